"""Expected hypervolume improvement of independent Gaussian objectives: exact, in log space. Pure.

Lower is better on every objective. The region a new point can add to the hypervolume (below the
reference point ``ref`` and dominated by no point of the front) is cut into disjoint boxes
(``boxes``). With independent objectives ``Y_j ~ N(mu_j, s_j^2)``, the improvement's expectation
is an integral of ``P(Y <= z)`` over that region, which factorises over each box:

    EHVI = sum over boxes of  prod_j  integral from l_j to u_j of Phi((z - mu_j) / s_j) dz
         = sum over boxes of  prod_j  s_j [h((u_j - mu_j) / s_j) - h((l_j - mu_j) / s_j)],

with ``h(z) = phi(z) + z Phi(z)`` (0 at -inf), the function log EI is built on. Each factor is
taken from ``acquisition.log_h``, so log EHVI stays finite and smooth where EHVI underflows, as
log EI does (Ament et al. 2023); the gradient is analytic.

The boxes: the first axis is cut at the front's values; behind each slab lie the points with a
smaller first coordinate, whose front in the remaining axes is cut the same way, down to two
axes, where a sorted sweep gives one box per step of the staircase. For K front points that is
K + 1 boxes with two objectives and at most (K + 1)(K + 2) / 2 with three; the count grows as
K^(m-1), which is why the sampler uses exact EHVI for up to three objectives only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from kubetune.core.samplers._gp.acquisition import _MIN_VAR, _log1mexp, log_h

__all__ = ["LogEHVI", "boxes"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _boxes_2d(front: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` for two objectives: one slab per distinct first coordinate, each reaching up
    to the lowest second coordinate behind it (slabs that reach equally high are merged)."""
    if len(front) == 0:
        return np.array([[-np.inf, -np.inf]]), np.array([[ref[0], ref[1]]])
    order = np.lexsort((front[:, 1], front[:, 0]))
    xs, ys = front[order, 0], np.minimum.accumulate(front[order, 1])
    last = np.flatnonzero(np.append(xs[1:] != xs[:-1], True))  # last row of each distinct x
    edges = np.concatenate([[-np.inf], xs[last], [ref[0]]])
    tops = np.concatenate([[ref[1]], ys[last]])
    step = np.append(True, tops[1:] < tops[:-1])  # a slab starts where its top drops
    lower = np.column_stack([edges[:-1][step], np.full(int(step.sum()), -np.inf)])
    upper = np.column_stack([np.append(edges[1:-1][step[1:]], ref[0]), tops[step]])
    return lower, upper


def boxes(front: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint boxes (lower, upper), each (B, m), whose union is the part of the box below
    ``ref`` that no point of ``front`` (K, m) weakly dominates. Lower bounds may be -inf."""
    m = len(ref)
    front = front[(front < ref).all(axis=1)]
    if m == 1:
        top = min(float(ref[0]), float(front[:, 0].min())) if len(front) else float(ref[0])
        return np.array([[-np.inf]]), np.array([[top]])
    if m == 2:
        return _boxes_2d(front, ref)
    front = front[np.argsort(front[:, 0], kind="stable")]
    edges = np.concatenate([[-np.inf], np.unique(front[:, 0]), [ref[0]]])
    lowers, uppers = [], []
    for lo, hi in itertools.pairwise(edges):
        behind = front[: int(np.searchsorted(front[:, 0], lo, side="right"))]
        sub_lo, sub_hi = boxes(behind[:, 1:], ref[1:])
        lowers.append(np.column_stack([np.full(len(sub_lo), lo), sub_lo]))
        uppers.append(np.column_stack([np.full(len(sub_hi), hi), sub_hi]))
    return np.vstack(lowers), np.vstack(uppers)


class _Axis:
    """One objective's share of the boxes: the distinct bounds on its axis (``grid``), the
    distinct (lower, upper) pairs of the boxes as indices into it (lower -1 for -inf), and each
    box's pair. Every closed form is evaluated once per grid value, then gathered per pair."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        finite = np.isfinite(lower)
        self.grid = np.unique(np.concatenate([lower[finite], upper]))
        lo = np.where(finite, np.searchsorted(self.grid, np.where(finite, lower, 0.0)), -1)
        hi = np.searchsorted(self.grid, upper)
        pairs, of_box = np.unique(np.column_stack([lo, hi]), axis=0, return_inverse=True)
        self.of_box = of_box.reshape(-1)
        self.hi, self.has_lo = pairs[:, 1], pairs[:, 0] >= 0
        self.lo = np.maximum(pairs[:, 0], 0)  # gathered only where has_lo

    def z(self, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """The grid standardised by each point's posterior (N, G)."""
        return (self.grid[None, :] - mean[:, None]) / sd[:, None]

    def log_widths(self, z: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """log of s [h(zu) - h(zl)] for each pair (N, P): the box's factor on this axis."""
        log_cap = log_h(z) + np.log(sd)[:, None]
        upper = log_cap[:, self.hi]
        gap = np.where(self.has_lo, log_cap[:, self.lo] - upper, -1.0)
        return upper + np.where(self.has_lo, _log1mexp(gap), 0.0)

    def log_slopes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair (N, P): log(Phi(zu) - Phi(zl)), log phi(zu) and log phi(zl), the factor's
        derivatives with respect to the mean (negated) and to the sd (their difference).
        The mass is mirrored into the left tail, where ``log_ndtr`` is accurate."""
        log_cdf, log_sf = special.log_ndtr(z), special.log_ndtr(-z)
        log_pdf = -0.5 * z * z - _LOG_SQRT_2PI
        flip = self.has_lo & (z[:, self.lo] + z[:, self.hi] > 0)
        top = np.where(flip, log_sf[:, self.lo], log_cdf[:, self.hi])
        gap = np.where(flip, log_sf[:, self.hi], log_cdf[:, self.lo]) - top
        mass = top + np.where(self.has_lo, _log1mexp(np.where(self.has_lo, gap, -1.0)), 0.0)
        pdf_lo = np.where(self.has_lo, log_pdf[:, self.lo], -np.inf)
        return mass, log_pdf[:, self.hi], pdf_lo


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """log sum exp over the rows of ``a`` (N, B), every entry finite (scipy's is slower for a
    single row, which is what the acquisition's local search asks for)."""
    top = a.max(axis=1)
    return np.asarray(top + np.log(np.exp(a - top[:, None]).sum(axis=1)))


class LogEHVI:
    """log EHVI at points of the cube, from one posterior per objective (each with
    ``predict`` and ``predict_with_grad``, as ``fit.Posterior``), the front and ``ref`` in the
    posteriors' units. Satisfies ``optimize.Acquisition``."""

    def __init__(self, posteriors: Sequence[Any], front: np.ndarray, ref: np.ndarray) -> None:
        self.posteriors = list(posteriors)
        lower, upper = boxes(np.asarray(front, dtype=float), np.asarray(ref, dtype=float))
        self.lower, self.upper = lower, upper
        self.axes = [_Axis(lower[:, j], upper[:, j]) for j in range(len(ref))]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        total = np.zeros((len(x), len(self.lower)))
        for axis, post in zip(self.axes, self.posteriors, strict=True):
            mean, var = post.predict(x)
            sd = np.sqrt(np.maximum(var, _MIN_VAR))
            total += axis.log_widths(axis.z(mean, sd), sd)[:, axis.of_box]
        return _logsumexp(total)

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (N,) and gradients (N, d) at the rows of ``x``.

        With w_b the share of box b in EHVI and D_bj its factor on axis j,
        d log EHVI / d mu_j = -sum_b w_b [Phi(zu) - Phi(zl)] / D_bj and
        d log EHVI / d s_j = sum_b w_b [phi(zu) - phi(zl)] / D_bj; each term is one exp of a
        sum of logs, so none overflows.
        """
        stats = [post.predict_with_grad(x) for post in self.posteriors]
        logs, slopes, sds = [], [], []
        for axis, (mean, var, _, _) in zip(self.axes, stats, strict=True):
            sd = np.sqrt(np.maximum(var, _MIN_VAR))
            z = axis.z(mean, sd)
            logs.append(axis.log_widths(z, sd)[:, axis.of_box])
            slopes.append([t[:, axis.of_box] for t in axis.log_slopes(z)])
            sds.append(sd)
        total = np.sum(logs, axis=0)
        value = _logsumexp(total)
        grad = np.zeros(x.shape)
        for j, (_, var, dmean, dvar) in enumerate(stats):
            rest = total - logs[j] - value[:, None]  # log(w_b / D_bj)
            mass, pdf_hi, pdf_lo = slopes[j]
            d_mean = -np.exp(rest + mass).sum(axis=1)
            d_sd = (np.exp(rest + pdf_hi) - np.exp(rest + pdf_lo)).sum(axis=1)
            d_var = np.where(var <= _MIN_VAR, 0.0, d_sd / (2.0 * sds[j]))
            grad += d_mean[:, None] * dmean + d_var[:, None] * dvar
        return value, grad
