"""Gaussian-process regression: kernel hyperparameters by marginal likelihood, and the posterior.

Purely computational. Hyperparameters live in log space, ``theta = [log w_1..w_d, log s,
log(noise - MIN_NOISE)]`` (``w``: inverse squared lengthscales, ``s``: signal variance), and are
fitted as the maximum a posteriori estimate with Optuna's weak priors: a penalty
``0.1 / w + 0.1 * w`` per axis (lengthscales near the width of the cube), Gamma(2, 1) on ``s``
and Gamma(1.1, 30) on the noise (small noise, so a deterministic objective is interpolated).
The gradient is analytic, so L-BFGS-B converges in tens of steps; a few fixed starts (no
randomness, no state carried between calls) guard against a poor local optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

from kubetune.core.samplers._gp import kernels

__all__ = ["MIN_NOISE", "KernelParams", "Posterior", "fit_kernel_params", "neg_log_posterior"]

# The noise floor (in standardised units; the fitted noise is at least MIN_NOISE + e^-20). Low,
# because expected improvement at an observed point is about sqrt(noise) * 0.4: with Optuna's
# 1e-6 that beat every unexplored point once the fit grew confident, and the sampler re-proposed
# its incumbent (Branin, 5 startup trials: stuck at 1.94, not 0.398, in 1 of 12 seeds; in none
# with 1e-10). The rarer traps left are handled by the sampler skipping near-copies.
MIN_NOISE = 1e-10
_ONE_START_ABOVE = 40
# Bounds keep the search inside numerically safe kernels (lengthscales from ~1e-2 to ~1e2).
_LOG_W_BOUNDS = (-9.0, 9.0)
_LOG_S_BOUNDS = (-7.0, 5.0)
_LOG_NOISE_BOUNDS = (-20.0, 1.0)


@dataclass(frozen=True)
class KernelParams:
    """Inverse squared lengthscales (one per axis), signal variance and noise variance."""

    inv_sq_ls: np.ndarray
    signal: float
    noise: float

    @property
    def lengthscales(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.inv_sq_ls)


def _unpack(theta: np.ndarray) -> KernelParams:
    d = len(theta) - 2
    return KernelParams(
        np.exp(theta[:d]), float(np.exp(theta[d])), float(np.exp(theta[d + 1]) + MIN_NOISE)
    )


def _cholesky(k: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding jitter only if the matrix is numerically indefinite."""
    jitter = 0.0
    scale = float(np.mean(np.diag(k)))
    for _ in range(6):
        try:
            return linalg.cholesky(k + jitter * np.eye(len(k)), lower=True, check_finite=False)
        except linalg.LinAlgError:
            jitter = scale * (1e-8 if jitter == 0.0 else jitter / scale * 100.0)
    raise linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def neg_log_posterior(
    theta: np.ndarray, dists: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient. Pure.

    ``dists`` comes from ``kernels.axis_sq_dists``. The gradient uses
    d(-log p(y))/d theta = 0.5 * tr((K^-1 - alpha alpha^T) dK/d theta).
    """
    d = dists.shape[0]
    p = _unpack(theta)
    kv, kd = kernels.matern52(np.tensordot(p.inv_sq_ls, dists, 1))
    k = p.signal * kv
    k[np.diag_indices_from(k)] += p.noise
    try:
        chol = _cholesky(k)
    except linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = linalg.cho_solve((chol, True), y, check_finite=False)
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum())
    # K^-1 from the factor (LAPACK potri): a third of the work of solving against I.
    inv_lower, _ = lapack.dpotri(chol, lower=1)
    k_inv = np.tril(inv_lower) + np.tril(inv_lower, -1).T
    w_mat = k_inv - np.outer(alpha, alpha)
    grad = np.empty_like(theta)
    grad[:d] = (
        0.5 * p.inv_sq_ls * np.tensordot(dists, w_mat * (p.signal * kd), axes=([1, 2], [0, 1]))
    )
    grad[d] = 0.5 * float((w_mat * (p.signal * kv)).sum())
    excess = p.noise - MIN_NOISE
    grad[d + 1] = 0.5 * excess * float(np.trace(w_mat))
    # Priors (negated log densities, constants dropped) and their gradients in log space.
    w = p.inv_sq_ls
    value += float((0.1 / w + 0.1 * w).sum())
    grad[:d] += -0.1 / w + 0.1 * w
    value += -(np.log(p.signal) - p.signal)
    grad[d] += -(1.0 - p.signal)
    value += -(0.1 * np.log(p.noise) - 30.0 * p.noise)
    grad[d + 1] += -(0.1 / p.noise - 30.0) * excess
    return value, grad


def _default_starts(d: int) -> list[np.ndarray]:
    """Fixed starting points: long lengthscales (smooth) and short ones (wiggly)."""
    starts = []
    for log_w in (0.0, np.log(25.0)):
        starts.append(np.concatenate([np.full(d, log_w), [0.0, np.log(1e-3)]]))
    return starts


def fit_kernel_params(
    x: np.ndarray, y: np.ndarray, is_cat: np.ndarray, *, n_starts: int | None = None
) -> KernelParams:
    """Fit the kernel to (x, y) by maximum a posteriori with multi-start L-BFGS-B. Pure.

    ``y`` should be standardised. Deterministic: the starts are fixed, not random. By default
    two starts, one above ``_ONE_START_ABOVE`` points, where each step costs O(n^3) and the
    likelihood is peaked enough that the second start rarely wins.
    """
    if n_starts is None:
        n_starts = 1 if len(y) > _ONE_START_ABOVE else 2
    d = x.shape[1]
    dists = kernels.axis_sq_dists(x, is_cat)
    bounds = [_LOG_W_BOUNDS] * d + [_LOG_S_BOUNDS, _LOG_NOISE_BOUNDS]
    best_theta, best_value = None, np.inf
    for theta0 in _default_starts(d)[: max(1, n_starts)]:
        res = optimize.minimize(
            neg_log_posterior,
            theta0,
            args=(dists, y),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 200, "gtol": 1e-2},
        )
        if np.isfinite(res.fun) and res.fun < best_value:
            best_theta, best_value = res.x, float(res.fun)
    if best_theta is None:
        best_theta = _default_starts(d)[0]
    return _unpack(best_theta)


class Posterior:
    """The GP posterior given training points, optionally with fantasised points.

    Fantasies are observations at their own posterior mean (the kriging believer): they leave
    the mean unchanged and shrink the variance around them, which is what spreads a batch.
    They carry only ``MIN_NOISE``, whatever noise was fitted: a point already chosen should look
    known, or a noisy fit would let the whole batch pile onto the same optimum.
    Because the mean is unchanged, the weights ``alpha`` of fantasised points are exactly zero,
    so adding them only extends the Cholesky factor.
    """

    def __init__(
        self,
        x: np.ndarray,
        params: KernelParams,
        is_cat: np.ndarray,
        chol: np.ndarray,
        alpha: np.ndarray,
    ) -> None:
        self.x = x
        self.params = params
        self.is_cat = is_cat
        self.chol = chol
        self.alpha = alpha

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, params: KernelParams, is_cat: np.ndarray
    ) -> Posterior:
        k = cls._kernel(x, x, params, is_cat)
        k[np.diag_indices_from(k)] += params.noise
        chol = _cholesky(k)
        alpha = linalg.cho_solve((chol, True), y, check_finite=False)
        return cls(x, params, is_cat, chol, alpha)

    @staticmethod
    def _kernel(
        a: np.ndarray, b: np.ndarray, params: KernelParams, is_cat: np.ndarray
    ) -> np.ndarray:
        kv, _ = kernels.matern52(kernels.scaled_sq_dist(a, b, params.inv_sq_ls, is_cat))
        return params.signal * kv

    def with_fantasies(self, xp: np.ndarray) -> Posterior:
        """This posterior with observations at ``xp`` equal to their posterior mean."""
        if len(xp) == 0:
            return self
        k12 = self._kernel(self.x, xp, self.params, self.is_cat)
        k22 = self._kernel(xp, xp, self.params, self.is_cat)
        k22[np.diag_indices_from(k22)] += MIN_NOISE
        l21t = linalg.solve_triangular(self.chol, k12, lower=True, check_finite=False)
        l22 = _cholesky(k22 - l21t.T @ l21t)
        n, m = len(self.x), len(xp)
        chol = np.zeros((n + m, n + m))
        chol[:n, :n] = self.chol
        chol[n:, :n] = l21t.T
        chol[n:, n:] = l22
        alpha = np.concatenate([self.alpha, np.zeros(m)])
        return Posterior(np.vstack([self.x, xp]), self.params, self.is_cat, chol, alpha)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at the rows of ``xq``."""
        k = self._kernel(xq, self.x, self.params, self.is_cat)
        v = linalg.solve_triangular(self.chol, k.T, lower=True, check_finite=False)
        var = self.params.signal - np.einsum("ij,ij->j", v, v)
        return k @ self.alpha, np.maximum(var, 0.0)

    def predict_with_grad(
        self, xq: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients (m, d) with respect to ``xq``.

        Gradients on categorical axes are zero: those axes are searched by enumeration.
        """
        p = self.params
        kv, kd = kernels.matern52(kernels.scaled_sq_dist(xq, self.x, p.inv_sq_ls, self.is_cat))
        k = p.signal * kv
        v = linalg.solve_triangular(self.chol, k.T, lower=True, check_finite=False)
        var = p.signal - np.einsum("ij,ij->j", v, v)
        kinv_k = linalg.solve_triangular(self.chol.T, v, lower=False, check_finite=False)
        # dk/dxq_j = s * k'(r2) * 2 w_j (xq_j - x_j), summed against alpha and K^-1 k.
        a = p.signal * kd * self.alpha[None, :]
        b = p.signal * kd * kinv_k.T
        two_w = 2.0 * p.inv_sq_ls
        if np.isnan(xq).any() or np.isnan(self.x).any():
            dmean, dvar = _conditional_grads(xq, self.x, a, b, two_w)
        else:
            dmean = two_w * (xq * a.sum(1)[:, None] - a @ self.x)
            dvar = -2.0 * two_w * (xq * b.sum(1)[:, None] - b @ self.x)
        dmean[:, self.is_cat] = 0.0
        dvar[:, self.is_cat] = 0.0
        return k @ self.alpha, np.maximum(var, 0.0), dmean, dvar


def _conditional_grads(xq: np.ndarray, x: np.ndarray, a: np.ndarray, b: np.ndarray,
                       two_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean's and variance's gradients when points may be NaN (inactive) on some axes: an
    axis moves the kernel only between two points that both have it; a query point without it
    has no gradient there."""
    dmean, dvar = np.zeros(xq.shape), np.zeros(xq.shape)
    xq0, x0 = np.nan_to_num(xq), np.nan_to_num(x)
    for j in range(xq.shape[1]):
        both = ~np.isnan(xq[:, j, None]) & ~np.isnan(x[None, :, j])
        aj, bj = a * both, b * both
        dmean[:, j] = two_w[j] * (xq0[:, j] * aj.sum(1) - aj @ x0[:, j])
        dvar[:, j] = -2.0 * two_w[j] * (xq0[:, j] * bj.sum(1) - bj @ x0[:, j])
    return dmean, dvar
