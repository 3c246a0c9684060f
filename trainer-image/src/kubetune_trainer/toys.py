"""Toy objectives with known optima, and failure modes, for tests and examples.

``python -m kubetune_trainer toy <name> [options]``; parameters come from ``KUBETUNE_PARAMS``
(any names), the objective's name from ``KUBETUNE_METRIC`` (default ``val_loss``), and the
trial number from ``KUBETUNE_TRIAL``. Each finishes in well under a second unless told to
sleep, and imports neither torch nor scikit-learn.

- ``quadratic``: the sum over numeric parameters of ``(value - target)**2``, target 0.5 unless
  ``--target name=value`` says otherwise; a string or boolean parameter adds 1 when it differs
  from its ``--target`` (and nothing without one). Minimum 0 at the targets. With
  ``--steps N`` it reports a curve ``f + (N - k) / N`` for k = 1..N, which ends at ``f`` and
  ranks trials the same at every step; ``--sleep S`` waits S seconds per step. ``--negate``
  reports ``-f`` for studies that maximise.
- ``curves``: learning curves ``f + 1/k`` over ``--steps`` (default 9) steps, except on odd
  trial numbers, which are hopeless: ``10 + f + 1/k``. An early stopper should stop them.
- ``fail``: reports ``--steps`` steps (default 0), then exits with ``--exit-code`` (default 1).
- ``nan``: reports a NaN objective as the final result and exits 0.
- ``silent``: reports nothing and exits 0.
- ``malformed``: writes malformed JSON to the metrics and curve annotations (or stdout outside
  a pod) and exits 0.

The pure functions (``quadratic``, ``quadratic_curve``, ``curves_curve``) compute the values.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_TARGET",
    "HOPELESS_OFFSET",
    "curves_curve",
    "main",
    "quadratic",
    "quadratic_curve",
]

DEFAULT_TARGET = 0.5
HOPELESS_OFFSET = 10.0

Reporter = Callable[..., None]


def quadratic(params: Mapping[str, Any], targets: Mapping[str, Any] | None = None) -> float:
    """Sum of squared distances of the numeric params from their targets, +1 per wrong label."""
    targets = targets or {}
    total = 0.0
    for name, value in params.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            target = float(targets.get(name, DEFAULT_TARGET))
            total += (float(value) - target) ** 2
        elif name in targets and str(value).lower() != str(targets[name]).lower():
            total += 1.0
    return total


def quadratic_curve(value: float, steps: int) -> list[tuple[int, float]]:
    """[(k, value + (steps - k) / steps)] for k = 1..steps: ends at ``value``. Pure."""
    return [(k, value + (steps - k) / steps) for k in range(1, steps + 1)]


def curves_curve(value: float, steps: int, trial: int) -> list[tuple[int, float]]:
    """[(k, value + 1/k)], shifted up by HOPELESS_OFFSET on odd trial numbers. Pure."""
    offset = HOPELESS_OFFSET if trial % 2 else 0.0
    return [(k, offset + value + 1.0 / k) for k in range(1, steps + 1)]


def _params(environ: Mapping[str, str]) -> dict[str, Any]:
    text = environ.get("KUBETUNE_PARAMS", "").strip()
    if not text:
        return {}
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("KUBETUNE_PARAMS must be a JSON object such as {\"x\": 0.3}")
    return loaded


def _targets(pairs: Sequence[str]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--target {pair!r}: expected NAME=VALUE, for example x=0.3")
        try:
            targets[name] = float(text)
        except ValueError:
            targets[name] = text
    return targets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubetune_trainer toy",
                                     description="Toy objectives with known optima.")
    parser.add_argument("name", choices=["quadratic", "curves", "fail", "nan", "silent",
                                         "malformed"])
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to report (quadratic 1, curves 9, fail 0)")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to wait per step")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=VALUE",
                        help="optimum of one parameter (default 0.5 for numbers)")
    parser.add_argument("--negate", action="store_true", help="report -f (for maximise)")
    parser.add_argument("--exit-code", type=int, default=1, help="status of `toy fail`")
    parser.add_argument("--trial", type=int, default=None,
                        help="trial number (default KUBETUNE_TRIAL, else 0)")
    return parser


def _report_curve(report: Reporter, metric: str, curve: list[tuple[int, float]],
                  sleep: float, *, final: bool) -> None:
    for i, (step, value) in enumerate(curve):
        if sleep > 0:
            time.sleep(sleep)
        report(step=step, final=final and i == len(curve) - 1, **{metric: value})


def _write_malformed() -> None:
    from kubetune import sdk

    sink = sdk.transport_from_env()
    pod = sdk.pod_from_env()
    if sink is None or pod is None:
        print('{"step": 1, "metrics": {', flush=True)
        return
    from kubetune.core import protocol

    sink.patch_annotations(pod, {protocol.METRICS_ANNOTATION: '{"step": 1, "metrics": {',
                                 protocol.CURVE_ANNOTATION: "[[1, 0.5], [2,"})


def main(argv: Sequence[str], *, report: Reporter | None = None,
         environ: Mapping[str, str] | None = None) -> int:
    """Run one toy; returns the exit status."""
    env = os.environ if environ is None else environ
    args = _parser().parse_args(list(argv))
    if report is None:
        from kubetune.sdk import report as sdk_report

        report = sdk_report
    metric = env.get("KUBETUNE_METRIC") or "val_loss"
    try:
        params = _params(env)
        targets = _targets(args.target)
    except ValueError as exc:
        print(f"kubetune-trainer toy: {exc}", file=sys.stderr)
        return 2
    trial = args.trial if args.trial is not None else int(env.get("KUBETUNE_TRIAL") or 0)
    sign = -1.0 if args.negate else 1.0
    value = quadratic(params, targets)

    if args.name == "quadratic":
        curve = quadratic_curve(value, args.steps or 1)
    elif args.name == "curves":
        curve = curves_curve(value, args.steps or 9, trial)
    elif args.name == "fail":
        curve = quadratic_curve(value, args.steps) if args.steps else []
        _report_curve(report, metric, [(k, sign * v) for k, v in curve], args.sleep,
                      final=False)
        print(f"kubetune-trainer toy fail: exiting with status {args.exit_code} as asked",
              file=sys.stderr)
        return args.exit_code
    elif args.name == "nan":
        report(step=1, final=True, **{metric: math.nan})
        return 0
    elif args.name == "silent":
        print("kubetune-trainer toy silent: reporting nothing", file=sys.stderr)
        return 0
    else:
        _write_malformed()
        return 0
    _report_curve(report, metric, [(k, sign * v) for k, v in curve], args.sleep, final=True)
    return 0
