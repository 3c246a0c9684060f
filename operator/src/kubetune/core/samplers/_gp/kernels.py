"""The Matérn-5/2 ARD kernel over the unit cube, with a Hamming distance for categoricals.

Purely computational. The kernel is a function of the scaled squared distance
``r2 = sum_j w_j * dist_j(a, b)``, where ``w_j`` is the inverse squared lengthscale of axis j,
``dist_j = (a_j - b_j) ** 2`` on numeric axes and ``[a_j != b_j]`` on categorical ones. Note
that a one-hot encoding with one lengthscale per categorical gives the same kernel (its squared
distance is ``2 * [a_j != b_j]``), so the Hamming form loses nothing and keeps one axis per
parameter.

In a conditional space a point is NaN on the axes it leaves inactive; such an axis adds 0 to
``r2`` between two points that both leave it inactive, its full weight (the largest distance on
the cube) between one that has it and one that does not, and the usual term otherwise. An
absent value is never read as a number.

Derivatives are taken with respect to ``r2``, where the Matérn-5/2 profile is smooth even at
``r2 = 0`` (the derivative with respect to ``r`` is not).
"""

from __future__ import annotations

import numpy as np

__all__ = ["axis_sq_dists", "matern52", "scaled_sq_dist"]

_SQRT5 = np.sqrt(5.0)


def matern52(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Matérn-5/2 profile k(r2) with unit variance, and dk/d(r2). Pure."""
    t = _SQRT5 * np.sqrt(np.maximum(r2, 0.0))
    e = np.exp(-t)
    t += 1.0
    value = (t + (5.0 / 3.0) * r2) * e
    deriv = (-5.0 / 6.0) * t * e
    return value, deriv


def scaled_sq_dist(
    a: np.ndarray, b: np.ndarray, inv_sq_ls: np.ndarray, is_cat: np.ndarray
) -> np.ndarray:
    """``r2`` between every row of ``a`` (m, d) and of ``b`` (n, d), shape (m, n). Pure.

    Numeric axes use the expansion |a|^2 + |b|^2 - 2 a.b on scaled inputs (one matrix product,
    no (m, n, d) temporary); categorical axes add their weight where the values differ.
    """
    gaps = np.isnan(a).any(axis=0) | np.isnan(b).any(axis=0)
    if gaps.any():
        r2 = scaled_sq_dist(np.nan_to_num(a[:, ~gaps]), np.nan_to_num(b[:, ~gaps]),
                            inv_sq_ls[~gaps], is_cat[~gaps])
        for j in np.flatnonzero(gaps):
            r2 += inv_sq_ls[j] * _conditional_dist(a[:, j, None], b[None, :, j], is_cat[j])
        return r2
    num = ~is_cat
    r2 = np.zeros((a.shape[0], b.shape[0]))
    if num.any():
        s = np.sqrt(inv_sq_ls[num])
        sa, sb = a[:, num] * s, b[:, num] * s
        r2 += (sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * (sa @ sb.T)
        np.maximum(r2, 0.0, out=r2)
    for j in np.flatnonzero(is_cat):
        r2 += inv_sq_ls[j] * (np.abs(a[:, j, None] - b[None, :, j]) > 1e-9)
    return r2


def axis_sq_dists(x: np.ndarray, is_cat: np.ndarray) -> np.ndarray:
    """Per-axis distances between the rows of ``x`` (n, d), shape (d, n, n). Pure.

    Kernel fitting reuses them at every step: ``r2 = tensordot(w, D, 1)`` and
    ``d r2 / d log w_j = w_j * D[j]``.
    """
    diff = x.T[:, :, None] - x.T[:, None, :]
    dists = diff * diff
    if is_cat.any():
        dists[is_cat] = (np.abs(diff[is_cat]) > 1e-9).astype(float)
    for j in np.flatnonzero(np.isnan(x).any(axis=0)):
        dists[j] = _conditional_dist(x[:, j, None], x[None, :, j], is_cat[j])
    return dists


def _conditional_dist(a: np.ndarray, b: np.ndarray, categorical: bool) -> np.ndarray:
    """One axis's distance between broadcast ``a`` and ``b`` that may be NaN (inactive): 0
    when both are, 1 when one is, else the usual term."""
    gap_a, gap_b = np.isnan(a), np.isnan(b)
    diff = np.nan_to_num(a) - np.nan_to_num(b)
    usual = (np.abs(diff) > 1e-9).astype(float) if categorical else diff * diff
    return np.where(gap_a & gap_b, 0.0, np.where(gap_a | gap_b, 1.0, usual))
