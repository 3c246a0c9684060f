"""The problems of the sampler benchmark: COCO bbob through ``cocoex``, noisy bbob, mixed spaces.

A problem is named ``suite/function/instance/dimension`` and built in the process that runs it
(cocoex problems do not pickle). ``evaluate(params)`` returns (observed, true): the value the
optimizer is told and the noiseless value that scores it.

- ``bbob``: the 24 noiseless bbob functions on [-5, 5]^d. f* comes from the problem's own
  optimum (``Problem._best_parameter``), so log10 precision f - f* is exact.
- ``noisy``: the same functions, told f* + (f - f*) * exp(0.1 * N(0, 1)): bbob-noisy's
  multiplicative Gaussian model, with a known scale; the draws are seeded per run and trial.
- ``mixed``: bbob functions at d = 5 where x0 and x1 are integers in [-5, 5] and x2 is a
  categorical of {-4, -2, 0, 2, 4}, plus the mixed6 function of benchmarks/functions.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NOISE_SCALE", "Problem", "build"]

NOISE_SCALE = 0.1
_CHOICES = (-4.0, -2.0, 0.0, 2.0, 4.0)


@dataclass
class Problem:
    name: str
    search_space: dict[str, dict[str, Any]]
    evaluate: Callable[[Mapping[str, Any]], tuple[float, float]]
    optimum: float
    noisy: bool


def _bbob(function: int, instance: int, dim: int) -> tuple[Any, float]:
    import cocoex

    suite = cocoex.Suite(
        "bbob", "", f"dimensions:{dim} instance_indices:{instance} function_indices:{function}"
    )
    problem = next(iter(suite))
    # cocoex writes the optimum to a file in the working directory; keep that out of the tree.
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            problem._best_parameter("print")
            x_opt = np.loadtxt("._bbob_problem_best_parameter.txt", ndmin=1)
        finally:
            os.chdir(here)
    return problem, float(problem(x_opt))


def build(name: str, seed: int) -> Problem:
    """The problem ``name`` (``suite/function/instance/dim``) for the run with ``seed``."""
    suite, function, instance, dim = name.split("/")
    if function == "mixed6":
        import functions

        fn = functions.FUNCTIONS["mixed6"]
        return Problem(name, dict(fn.search_space), lambda p: (fn.evaluate(p),) * 2, 0.0, False)
    d = int(dim)
    problem, f_opt = _bbob(int(function), int(instance), d)
    space = {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(d)}
    if suite == "mixed":
        space["x0"] = {"type": "int", "low": -5, "high": 5}
        space["x1"] = {"type": "int", "low": -5, "high": 5}
        space["x2"] = {"type": "categorical", "values": list(_CHOICES)}
    draws = np.random.default_rng([seed, int(function), int(instance), d, 7])

    def evaluate(params: Mapping[str, Any]) -> tuple[float, float]:
        true = float(problem(np.array([float(params[f"x{i}"]) for i in range(d)])))
        if suite != "noisy":
            return true, true
        return f_opt + (true - f_opt) * float(np.exp(NOISE_SCALE * draws.normal())), true

    return Problem(name, space, evaluate, f_opt, suite == "noisy")
