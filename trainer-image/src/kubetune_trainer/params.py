"""The trainer's hyperparameters: their table, defaults, and parsing from JSON and flags.

Purely computational apart from ``params_from_env_and_argv``, which reads ``os.environ``.
Every value is checked before training starts; an unknown name or an ill-typed value raises
:class:`ParamError` (a ``ValueError``) whose message names the parameter, the value and the fix.

Sources, in order of precedence (later wins): the defaults, ``KUBETUNE_PARAMS`` (a JSON object),
then command-line flags (``--lr=0.01``, ``--lr 0.01``, ``--batch-size 32``; booleans also as
``--hflip`` / ``--no-hflip``).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PARAMS",
    "REPORTED_METRICS",
    "ParamError",
    "ParamInfo",
    "markdown_table",
    "objective_metric",
    "params_from_env_and_argv",
    "parse_flags",
    "parse_params",
    "text_table",
]


class ParamError(ValueError):
    """A hyperparameter was unknown or ill-typed; the message says which and how to fix it."""


@dataclass(frozen=True)
class ParamInfo:
    """One hyperparameter: its type, default, admissible values and meaning."""

    name: str
    kind: str  # "float" | "int" | "bool" | "choice" | "str"
    default: Any
    group: str
    help: str
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive unless high_open
    high_open: bool = False
    low_open: bool = False
    choices: tuple[str, ...] = ()

    def describe_range(self) -> str:
        """The admissible values in words, for messages and the table."""
        if self.kind == "choice":
            return ", ".join(self.choices)
        if self.kind == "bool":
            return "true, false"
        if self.kind == "str":
            return "text"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else _fmt(self.high)
        return f"{lo}{low}, {high}{hi}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


PARAMS: dict[str, ParamInfo] = {
    p.name: p
    for p in (
        # features
        ParamInfo("rotation", "float", 0.0, "features",
                  "random rotation of each training image, up to this many degrees either way",
                  low=0.0, high=180.0),
        ParamInfo("hflip", "bool", False, "features",
                  "flip training images horizontally with probability 1/2"),
        ParamInfo("shift", "float", 0.0, "features",
                  "random shift of each training image, up to this fraction of its size",
                  low=0.0, high=0.5),
        ParamInfo("normalize", "choice", "standard", "features",
                  "input normalisation fitted on the training split: per-channel mean/std "
                  "(standard), per-channel min/max to [0, 1] (minmax), or none",
                  choices=("standard", "minmax", "none")),
        # architecture
        ParamInfo("model", "choice", "mlp", "architecture",
                  "a multilayer perceptron or a small convolutional network",
                  choices=("mlp", "cnn")),
        ParamInfo("depth", "int", 2, "architecture",
                  "hidden layers (mlp) or convolution blocks (cnn)", low=1, high=8),
        ParamInfo("width", "int", 128, "architecture",
                  "units per hidden layer (mlp) or channels per convolution (cnn)",
                  low=1, high=4096),
        ParamInfo("activation", "choice", "relu", "architecture",
                  "activation function", choices=("relu", "gelu", "tanh")),
        ParamInfo("dropout", "float", 0.0, "architecture",
                  "dropout probability before each linear layer after the first",
                  low=0.0, high=1.0, high_open=True),
        ParamInfo("pooling", "choice", "max", "architecture",
                  "2x2 pooling after each convolution block (cnn only)",
                  choices=("max", "avg")),
        # learning algorithm
        ParamInfo("lr", "float", 1e-3, "learning",
                  "initial learning rate", low=0.0, low_open=True),
        ParamInfo("optimizer", "choice", "adam", "learning",
                  "sgd (with momentum), adam or adamw", choices=("sgd", "adam", "adamw")),
        ParamInfo("momentum", "float", 0.9, "learning",
                  "momentum of sgd (ignored by adam and adamw)",
                  low=0.0, high=1.0, high_open=True),
        ParamInfo("weight_decay", "float", 0.0, "learning",
                  "L2 penalty (sgd, adam) or decoupled weight decay (adamw)", low=0.0),
        ParamInfo("batch_size", "int", 64, "learning", "training batch size", low=1,
                  high=65536),
        ParamInfo("epochs", "int", 10, "learning", "passes over the training split",
                  low=1, high=100000),
        ParamInfo("lr_schedule", "choice", "constant", "learning",
                  "constant; cosine decay to 0 over the run; or step (x0.1 at 50% and again "
                  "at 75% of the run)", choices=("constant", "cosine", "step")),
        # run settings (not usually tuned)
        ParamInfo("seed", "int", 0, "run",
                  "seed of weights, batch order and augmentation (the validation split is "
                  "fixed whatever the seed)", low=0, high=2**31 - 1),
        ParamInfo("data", "str", "digits", "run",
                  "'digits' (scikit-learn's bundled 8x8 digits), or a path to an .npz with "
                  "arrays x and y, or to an image folder with one subfolder per class"),
        ParamInfo("val_fraction", "float", 0.2, "run",
                  "fraction of the data held out for validation (stratified, fixed seed)",
                  low=0.0, high=1.0, low_open=True, high_open=True),
        ParamInfo("image_size", "int", 0, "run",
                  "resize folder images to this square size (0: keep; sizes must then agree)",
                  low=0, high=4096),
        ParamInfo("device", "choice", "auto", "run",
                  "auto (cuda when present), cpu or cuda", choices=("auto", "cpu", "cuda")),
        ParamInfo("threads", "int", 1, "run",
                  "CPU threads for torch (0: every CPU the process may use); one is fastest "
                  "for small models on shared cores. A CPU run is deterministic for a given "
                  "seed and thread count", low=0, high=1024),
    )
}

# What the trainer reports each epoch; KUBETUNE_METRIC must name one of them. params_count
# and latency_ms describe the model rather than its training (the same in every report of a
# run): a study with several objectives trades accuracy against them.
REPORTED_METRICS = ("val_loss", "val_accuracy", "train_loss", "epoch_seconds", "params_count",
                    "latency_ms")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _refuse(info: ParamInfo, value: Any, why: str) -> ParamError:
    return ParamError(
        f"parameter {info.name}={value!r}: {why}; expected {info.kind} in "
        f"{info.describe_range()} (default {info.default!r})"
    )


def _coerce(info: ParamInfo, value: Any, *, from_text: bool) -> Any:
    """The value of ``info`` given ``value`` (a JSON value, or text from a flag)."""
    kind = info.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _refuse(info, value, "not a boolean")
    if kind in ("choice", "str"):
        if not isinstance(value, str):
            raise _refuse(info, value, "not a string")
        if kind == "choice" and value not in info.choices:
            raise _refuse(info, value, "not one of the choices")
        if kind == "str" and not value:
            raise _refuse(info, value, "empty")
        return value
    # numbers
    if isinstance(value, bool):
        raise _refuse(info, value, "a boolean is not a number")
    if isinstance(value, str):
        if not from_text:
            # A JSON string where a number belongs is most likely a template mistake; say so.
            raise _refuse(info, value, "a string where a number belongs")
        try:
            number: float | int = int(value) if kind == "int" else float(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise _refuse(info, value, "not a number") from None
    elif isinstance(value, int | float):
        number = value
    else:
        raise _refuse(info, value, "not a number")
    if not math.isfinite(number):
        raise _refuse(info, value, "not finite")
    if kind == "int":
        if isinstance(number, float):
            if not number.is_integer():
                raise _refuse(info, value, "not a whole number")
            number = int(number)
    else:
        number = float(number)
    _check_range(info, number, value)
    return number


def _check_range(info: ParamInfo, number: float, shown: Any) -> None:
    if info.low is not None and (number < info.low or (info.low_open and number == info.low)):
        raise _refuse(info, shown, "below the range")
    if info.high is not None and (
        number > info.high or (info.high_open and number == info.high)
    ):
        raise _refuse(info, shown, "above the range")


def _unknown(name: str) -> ParamError:
    close = difflib.get_close_matches(name, list(PARAMS), n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return ParamError(
        f"unknown parameter {name!r}{hint}; known parameters: {', '.join(PARAMS)}. "
        "Remove it from the search space or the flags, or use a trainer that knows it."
    )


def parse_params(
    values: Mapping[str, Any] | None = None, *, from_text: bool = False
) -> dict[str, Any]:
    """All parameters: the defaults updated with ``values``, each one checked. Pure.

    ``from_text`` accepts numbers written as strings (flags); JSON numbers must be numbers.
    """
    result = {name: info.default for name, info in PARAMS.items()}
    for raw_name, value in (values or {}).items():
        name = str(raw_name).replace("-", "_")
        info = PARAMS.get(name)
        if info is None:
            raise _unknown(str(raw_name))
        result[name] = _coerce(info, value, from_text=from_text)
    return result


def parse_flags(argv: Sequence[str]) -> dict[str, str | bool]:
    """Flags as raw values: ``--name=value``, ``--name value``, ``--flag``, ``--no-flag``. Pure.

    Values stay text (checked by :func:`parse_params`); a bare boolean flag gives ``True``.
    """
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ParamError(
                f"unexpected argument {arg!r}; pass hyperparameters as --name=value "
                "(for example --lr=0.01)"
            )
        body = arg[2:]
        if "=" in body:
            name, text = body.split("=", 1)
            out[name.replace("-", "_")] = text
            i += 1
            continue
        name = body.replace("-", "_")
        negated = PARAMS.get(name[3:]) if name.startswith("no_") else None
        if negated is not None and negated.kind == "bool":
            out[name[3:]] = False
            i += 1
            continue
        info = PARAMS.get(name)
        if info is not None and info.kind == "bool":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is not None and nxt.lower() in _TRUE | _FALSE:
                out[name] = nxt
                i += 2
            else:
                out[name] = True
                i += 1
            continue
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            if info is None:
                raise _unknown(name)
            raise ParamError(f"flag --{name} needs a value, for example --{name}={info.default}")
        out[name] = argv[i + 1]
        i += 2
    return out


def params_from_env_and_argv(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The run's parameters: defaults, then ``KUBETUNE_PARAMS`` (JSON), then flags."""
    env = os.environ if environ is None else environ
    text = env.get("KUBETUNE_PARAMS", "").strip()
    from_json: dict[str, Any] = {}
    if text:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamError(
                f"KUBETUNE_PARAMS is not valid JSON ({exc.msg} at position {exc.pos}); "
                'it must be an object such as {"lr": 0.01}'
            ) from None
        if not isinstance(loaded, dict):
            raise ParamError(
                f"KUBETUNE_PARAMS must be a JSON object such as {{\"lr\": 0.01}}, "
                f"got {type(loaded).__name__}"
            )
        from_json = loaded
    params = parse_params(from_json)
    flags = parse_flags(argv)
    checked_flags = parse_params(flags, from_text=True)
    for name in flags:
        params[name] = checked_flags[name]
    return params


def objective_metric(environ: Mapping[str, str] | None = None) -> str:
    """The study's objective (``KUBETUNE_METRIC``, default val_loss), checked to be reported."""
    env = os.environ if environ is None else environ
    metric = env.get("KUBETUNE_METRIC") or "val_loss"
    if metric not in REPORTED_METRICS:
        raise ParamError(
            f"KUBETUNE_METRIC={metric!r} is not a metric this trainer reports; set the "
            f"study's objective.metric to one of {', '.join(REPORTED_METRICS)}"
        )
    return metric


def markdown_table() -> str:
    """The parameter table as Markdown (the README's and the module docstring's). Pure."""
    lines = ["| group | name | type | default | values | meaning |", "|---|---|---|---|---|---|"]
    for info in PARAMS.values():
        default = json.dumps(info.default)
        lines.append(
            f"| {info.group} | `{info.name}` | {info.kind} | `{default}` | "
            f"{info.describe_range()} | {info.help} |"
        )
    return "\n".join(lines)


_GROUP_TITLES = {
    "features": "Features",
    "architecture": "Architecture",
    "learning": "Learning algorithm",
    "run": "Run settings",
}


def text_table(width: int = 96) -> str:
    """The parameter table as plain text within ``width`` columns (the package docstring). Pure."""
    lines: list[str] = []
    for group, title in _GROUP_TITLES.items():
        lines.append(f"{title}:")
        for info in (p for p in PARAMS.values() if p.group == group):
            head = (f"  {info.name:<13} {info.kind:<7} default {json.dumps(info.default):<11} "
                    f"{info.describe_range()}")
            lines.append(head.rstrip())
            lines += textwrap.wrap(info.help, width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6, break_on_hyphens=False)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
