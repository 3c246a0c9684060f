"""Log expected improvement, computed stably far into the tails. Pure.

Following Ament et al. (2023), "Unexpected Improvements to Expected Improvement": with
``z = (best - mean) / sd`` (lower is better), EI = sd * h(z) with h(z) = phi(z) + z Phi(z), and
log h is evaluated by three formulas so that it stays finite and accurate where EI itself
underflows to zero (which is where a naive EI optimiser sees a flat, gradient-free surface).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["LogEI", "log_ei", "log_ei_with_grad", "log_h"]

_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)
_TAIL = -1.0 / math.sqrt(np.finfo(float).eps)
_MIN_VAR = 1e-12


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x < 0, accurate on both sides of -log 2."""
    x = np.minimum(x, -1e-300)
    return np.where(
        x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(np.minimum(x, -math.log(2.0))))
    )


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z * Phi(z)), finite for every finite z."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    out[hi] = np.log(np.exp(-0.5 * zh * zh) / math.sqrt(2.0 * math.pi) + zh * special.ndtr(zh))
    mid = (~hi) & (z > _TAIL)
    zm = z[mid]
    out[mid] = (
        -0.5 * zm * zm - _C1 + _log1mexp(np.log(special.erfcx(-zm / math.sqrt(2.0)) * -zm) + _C2)
    )
    lo = ~(hi | mid)
    zl = z[lo]
    out[lo] = -0.5 * zl * zl - _C1 - 2.0 * np.log(-zl)
    return out


def log_ei(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)] under f ~ N(mean, var)."""
    var = np.maximum(var, _MIN_VAR)
    sd = np.sqrt(var)
    return log_h((best - mean) / sd) + np.log(sd)


def log_ei_with_grad(
    mean: np.ndarray, var: np.ndarray, best: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log EI and its partial derivatives with respect to mean and variance.

    d log h / dz = Phi(z) / h(z), computed as exp(log Phi(z) - log h(z)) so it stays finite.
    """
    floored = var <= _MIN_VAR
    var = np.maximum(var, _MIN_VAR)
    sd = np.sqrt(var)
    z = (best - mean) / sd
    lh = log_h(z)
    g = np.exp(special.log_ndtr(z) - lh)
    d_mean = -g / sd
    d_var = np.where(floored, 0.0, (0.5 - 0.5 * z * g) / var)
    return lh + np.log(sd), d_mean, d_var


class LogEI:
    """log EI of a posterior against the incumbent ``best`` (lower is better).

    ``posterior`` is any object with ``predict(x) -> (mean, var)`` and
    ``predict_with_grad(x) -> (mean, var, dmean, dvar)``, such as ``fit.Posterior``.
    """

    def __init__(self, posterior: object, best: float) -> None:
        self.posterior = posterior
        self.best = float(best)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean, var = self.posterior.predict(x)  # type: ignore[attr-defined]
        return log_ei(mean, var, self.best)

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (m,) and gradients (m, d) at the rows of ``x``."""
        mean, var, dmean, dvar = self.posterior.predict_with_grad(x)  # type: ignore[attr-defined]
        value, g_mean, g_var = log_ei_with_grad(mean, var, self.best)
        return value, g_mean[:, None] * dmean + g_var[:, None] * dvar
