"""A quadratic model of the best trials, and the step to its minimum.

A full quadratic in d variables has ``(d + 1)(d + 2) / 2`` coefficients. Fitted by least
squares to the best trials, on their raw values (a quadratic bowl stays one only before any
warping), its Hessian has the axes of a rotated, ill-conditioned valley whatever their
orientation, where a GP with one lengthscale per axis sees only a blur. The step to its minimum
is the move of a model-based trust-region method (NEWUOA, BOBYQA), with the ball the fitted
points span as the region.

The step is taken only where the model is believable: its Hessian is positive definite (an
indefinite fit is noise along the flat axes of the valley, and steps on it were measured to
lose, see ``gp``), and it predicts an improvement on the best fitted value. The step is the
model's minimum over the ball the fitted points span. Otherwise ``minimum`` is None.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fitted_points", "minimum", "n_coefficients"]


_BISECTIONS = 60


def n_coefficients(dim: int) -> int:
    """Coefficients of a full quadratic in ``dim`` variables."""
    return (dim + 1) * (dim + 2) // 2


def fitted_points(dim: int) -> int:
    """How many of the best trials the model is fitted to: its coefficients plus ``dim``, so
    least squares has some slack to average noise and a bowl's non-quadratic edges."""
    return n_coefficients(dim) + dim


def _features(z: np.ndarray) -> np.ndarray:
    iu = np.triu_indices(z.shape[1])
    return np.hstack([np.ones((len(z), 1)), z, z[:, iu[0]] * z[:, iu[1]]])


def _step(g: np.ndarray, eig: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """The minimiser of g.s + s.H.s / 2 over the unit ball, for H = vec diag(eig) vec^T
    positive definite and g in H's eigenbasis: the Newton step where it fits, otherwise the
    point of the sphere where (H + lam I) s = -g, lam > 0 found by bisection."""

    def length(lam: float) -> float:
        return float(np.linalg.norm(g / (eig + lam)))

    lam = 0.0
    if length(0.0) > 1.0:
        lo, hi = 0.0, float(np.linalg.norm(g))  # at lam = |g|, |s| < |g| / |g| = 1
        for _ in range(_BISECTIONS):
            lam = 0.5 * (lo + hi)
            lo, hi = (lam, hi) if length(lam) > 1.0 else (lo, lam)
        lam = hi
    return -(vec @ (g / (eig + lam)))


def minimum(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The point the model of the ``fitted_points`` lowest rows of (``x``, ``y``) steps to, on
    the unit cube, or None where there are fewer rows or the model is not believable. ``x`` is
    on the unit cube, without NaN; lower ``y`` is better."""
    n, d = x.shape
    k = fitted_points(d)
    if n < k:
        return None
    order = np.argsort(y, kind="stable")[:k]
    xs, ys = x[order], y[order]
    center = xs[0]
    scale = float(np.max(np.linalg.norm(xs - center, axis=1)))
    span = float(ys[-1]) - float(ys[0])
    if not (scale > 0.0 and np.isfinite(span) and span > 0.0):
        return None
    z = (xs - center) / scale
    coef, *_ = np.linalg.lstsq(_features(z), (ys - ys[0]) / span, rcond=None)
    grad = coef[1 : d + 1]
    hess = np.zeros((d, d))
    hess[np.triu_indices(d)] = coef[d + 1 :]
    # z_i^2's coefficient is half the Hessian's diagonal; z_i z_j's is its (i, j) entry.
    hess = hess + hess.T
    eig, vec = np.linalg.eigh(hess)
    if not (np.all(np.isfinite(eig)) and eig[0] > 0.0):
        return None
    step = _step(vec.T @ grad, eig, vec)
    predicted = coef[0] + grad @ step + 0.5 * step @ hess @ step
    if not predicted < 0.0:
        return None
    return np.clip(center + scale * step, 0.0, 1.0)
