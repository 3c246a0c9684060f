"""Test functions for the sampler benchmark, each with its search space and known optimum.

Every function is minimised. Its space is written as a TuningStudy ``searchSpace`` so that our
samplers and Optuna's see the same parameters. ``optimum`` is the known global minimum, or None
for the real model, whose regret is measured against the best value any run has found.

- branin: 2-D, three global minima, f* = 0.397887 (Surjanovic and Bingham's library).
- hartmann6: 6-D on [0, 1]^6, f* = -3.322368.
- ackley10: 10-D on [-32.768, 32.768]^10, f* = 0 at the origin; a plateau with a funnel.
- rosenbrock8: 8-D on [-5, 10]^8, f* = 0 at (1, ..., 1); a badly scaled curved valley.
- levy4: 4-D on [-10, 10]^4, f* = 0 at (1, 1, 1, 1); many local minima.
- mixed6: log float, int, log int, stepped float and two categoricals, built so that the
  optimum is known: f* = 0 at lr=2e-3, depth=4, width=128, dropout=0.15, adamw, gelu. The best
  learning rate depends on the optimizer and depth interacts with width, as in real models.
- digits-svc: a real model: an RBF/poly/sigmoid SVC on scikit-learn's bundled digits after a
  PCA, validation error on a fixed stratified half split. Four hyperparameters: C, gamma (log),
  kernel, PCA components.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

__all__ = ["FUNCTIONS", "Function"]


@dataclass(frozen=True)
class Function:
    """A benchmark objective: minimise ``evaluate(params)`` over ``search_space``."""

    name: str
    search_space: Mapping[str, Mapping[str, Any]]
    evaluate: Callable[[Mapping[str, Any]], float]
    optimum: float | None


def _box(names: list[str], low: float, high: float) -> dict[str, dict[str, Any]]:
    return {n: {"type": "float", "low": low, "high": high} for n in names}


def _vector(params: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(d)])


def branin(params: Mapping[str, Any]) -> float:
    x1, x2 = float(params["x0"]), float(params["x1"])
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(params: Mapping[str, Any]) -> float:
    x = _vector(params, 6)
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def ackley10(params: Mapping[str, Any]) -> float:
    x = _vector(params, 10)
    a = -20 * math.exp(-0.2 * math.sqrt(float(np.mean(x**2))))
    return float(a - math.exp(float(np.mean(np.cos(2 * math.pi * x)))) + 20 + math.e)


def rosenbrock8(params: Mapping[str, Any]) -> float:
    x = _vector(params, 8)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy4(params: Mapping[str, Any]) -> float:
    w = 1 + (_vector(params, 4) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


# optimizer -> (penalty, best learning rate); activation -> penalty.
_OPTIMIZERS = {
    "sgd": (0.5, 1e-1),
    "momentum": (0.25, 3e-2),
    "adam": (0.05, 1e-3),
    "adamw": (0.0, 2e-3),
}
_ACTIVATIONS = {"relu": 0.05, "gelu": 0.0, "tanh": 0.2, "sigmoid": 0.6}


def mixed6(params: Mapping[str, Any]) -> float:
    penalty, best_lr = _OPTIMIZERS[params["optimizer"]]
    lr = math.log10(float(params["lr"]) / best_lr)
    depth = (int(params["depth"]) - 4) / 3
    width = (math.log2(int(params["width"])) - 7) / 2
    dropout = (float(params["dropout"]) - 0.15) / 0.2
    # depth and width trade off (positive definite: 0.5 * 0.5 > 0.15 ** 2).
    shape = 0.5 * depth**2 + 0.5 * width**2 + 0.3 * depth * width
    return penalty + _ACTIVATIONS[params["activation"]] + 0.4 * lr**2 + shape + 0.3 * dropout**2


@cache
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x / 16.0, y, test_size=0.5, random_state=0, stratify=y))


def digits_svc(params: Mapping[str, Any]) -> float:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    x_train, x_val, y_train, y_val = _digits()
    model = make_pipeline(
        PCA(n_components=int(params["components"]), random_state=0),
        SVC(C=float(params["C"]), gamma=float(params["gamma"]), kernel=str(params["kernel"])),
    )
    model.fit(x_train, y_train)
    return float(1.0 - model.score(x_val, y_val))


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            "branin",
            {**_box(["x0"], -5.0, 10.0), **_box(["x1"], 0.0, 15.0)},
            branin,
            0.397887357729738,
        ),
        Function(
            "hartmann6", _box([f"x{i}" for i in range(6)], 0.0, 1.0), hartmann6, -3.32236801141551
        ),
        Function("ackley10", _box([f"x{i}" for i in range(10)], -32.768, 32.768), ackley10, 0.0),
        Function("rosenbrock8", _box([f"x{i}" for i in range(8)], -5.0, 10.0), rosenbrock8, 0.0),
        Function("levy4", _box([f"x{i}" for i in range(4)], -10.0, 10.0), levy4, 0.0),
        Function(
            "mixed6",
            {
                "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
                "depth": {"type": "int", "low": 1, "high": 10},
                "width": {"type": "int", "low": 8, "high": 1024, "log": True},
                "dropout": {"type": "float", "low": 0.0, "high": 0.6, "step": 0.05},
                "optimizer": {"type": "categorical", "values": list(_OPTIMIZERS)},
                "activation": {"type": "categorical", "values": list(_ACTIVATIONS)},
            },
            mixed6,
            0.0,
        ),
        Function(
            "digits-svc",
            {
                "C": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
                "gamma": {"type": "float", "low": 1e-5, "high": 10.0, "log": True},
                "kernel": {"type": "categorical", "values": ["rbf", "poly", "sigmoid"]},
                "components": {"type": "int", "low": 8, "high": 64, "step": 8},
            },
            digits_svc,
            None,
        ),
    )
}
