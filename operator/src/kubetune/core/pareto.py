"""Pareto fronts of objective vectors: dominance, non-dominated sorting, crowding, thinning,
hypervolume and its reference point. Purely computational, numpy only.

Every function takes an objective matrix ``Y``: one row per point, one column per objective,
lower better on every column (``objectives.objective_matrix`` flips the maximised ones), finite
values. Studies have 2 to 4 objectives; sorting and crowding work for any number of columns,
hypervolume for 1 to 4.

Point a dominates point b when a is no worse on every objective and better on at least one. Equal
points do not dominate each other, so duplicates share their rank and both sit on a front.

Costs, for n points and m objectives (times on a loaded 2-core machine):

- ``nondominated_ranks``: m = 2 in O(n log n), one sweep that assigns every rank; m >= 3 gives
  each point one more than the highest rank among its dominators, comparing the points pairwise
  in vectorised blocks: O(n^2 m) work, whatever the shape of the fronts (10,000 x 4: about
  0.07 s, random points, one front or a chain of 10,000 fronts alike).
- ``pareto_mask``: the same sweep for m = 2; otherwise an elimination pass that removes what the
  best rows dominate, then the blocked comparison on the rows left.
- ``hypervolume``: m = 2 a sort and a sum; m = 3 a sweep along the third objective that keeps the
  2-D front of the points so far, O(n log n) apart from list inserts; m = 4 slices along the
  fourth objective, each slice's 3-D volume grown by the new point's exclusive contribution,
  computed from the points it limits (as WFG does), O(n^2) at worst. So that a status update
  stays cheap, a 4-D front of more than ``HV_MAX_POINTS_4D`` points is first ``thin``-ned to
  that many: the volume of such a front is that of a deterministic, evenly spread subset of it
  (slightly less than the exact volume), the same for the same points. 10,000 random 4-D points:
  about 0.02 s; a 4-D front of 10,000 points, thinned: about 0.25 s.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "HV_MAX_POINTS_4D",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_contributions",
    "nondominated_ranks",
    "normalised",
    "pareto_mask",
    "reference_point",
    "select_by_hypervolume",
    "thin",
]

HV_MAX_POINTS_4D = 500
"""Largest 4-D front whose hypervolume is computed on every point; larger fronts are thinned
to this many first. 500 points of a spherical, linear or convex 4-D front take about 0.06 s."""


def _matrix(y: ArrayLike) -> np.ndarray:
    """``y`` as a float (n, m) array, with -0.0 made 0.0 so that equal points compare equal."""
    a = np.asarray(y, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"an objective matrix must be 2-D (points x objectives), got {a.shape}")
    return a + 0.0


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """Whether point ``a`` dominates point ``b``: no worse on every objective, better on one."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(x <= y) and np.any(x < y))


def normalised(y: np.ndarray) -> np.ndarray:
    """Each column of ``y`` scaled to [0, 1] over its rows (a constant column to 0)."""
    low, span = y.min(axis=0), np.ptp(y, axis=0)
    return np.asarray((y - low) / np.where(span > 0, span, 1.0), dtype=float)


def _distinct(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``y``, ordered so that a row's dominators all come before it, and
    each row's index among them.

    The order is by the sum of the objectives scaled to [0, 1], then lexicographic: a dominator
    has no larger sum (rounding is monotone) and, on a tie, comes first lexicographically. Low
    sums come first, and those rows dominate the most, which the elimination pass relies on.
    """
    rows, inverse = np.unique(y, axis=0, return_inverse=True)
    total = normalised(rows).sum(axis=1)
    order = np.lexsort((*(rows[:, j] for j in reversed(range(rows.shape[1]))), total))
    position = np.empty(len(rows), dtype=np.int64)
    position[order] = np.arange(len(rows))
    return np.take(rows, order, axis=0), np.take(position, inverse.reshape(-1))


def _block_rows(n: int, m: int) -> int:
    """Rows per block of a pairwise comparison, so that a block holds about 4 M booleans."""
    return max(1, (1 << 22) // max(1, n * m))


def _dominated_by_earlier(cols: np.ndarray, s: int, e: int) -> np.ndarray:
    """(e - s, e) booleans: whether row j dominates row s + i, for distinct rows in
    dominators-first order (so no larger on every objective means dominates, and only
    earlier rows can), given as columns (``cols[j]`` holds objective j of every row)."""
    block = cols[0, None, :e] <= cols[0, s:e, None]
    for c in cols[1:]:
        block &= c[None, :e] <= c[s:e, None]
    block[np.arange(e - s), np.arange(s, e)] = False
    return block


def _ranks_2d(rows: np.ndarray) -> np.ndarray:
    """Ranks of distinct 2-D rows, in one sweep in lexicographic order.

    Lexicographically, a row can be dominated only by rows before it, and by one of them
    exactly when that row's second objective is no larger. Front k keeps the smallest second
    objective placed in it so far; those minima rise with k, so a row's rank is the first front
    whose minimum exceeds its own second objective (found by bisection), after which the row is
    that front's new minimum.
    """
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    tails: list[float] = []
    out = np.empty(len(rows), dtype=np.int64)
    for i, v in zip(order.tolist(), rows[order, 1].tolist(), strict=True):
        k = bisect.bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
        else:
            tails[k] = v
        out[i] = k
    return out


def _ranks(rows: np.ndarray) -> np.ndarray:
    """Ranks of distinct rows in dominators-first order: one more than the highest rank among a
    row's dominators, block by block, so that the pairwise comparisons run vectorised."""
    n, m = rows.shape
    cols = np.ascontiguousarray(rows.T)
    # One more than the rank, in the narrowest type that holds n, so that 0 means "no
    # dominator" and the masked maximum below moves as few bytes as it can.
    above = np.zeros(n, dtype=np.int32 if n >= (1 << 15) - 1 else np.int16)
    step = _block_rows(n, m)
    for s in range(0, n, step):
        e = min(n, s + step)
        dominated = _dominated_by_earlier(cols, s, e)
        before = (dominated[:, :s] * above[None, :s]).max(axis=1, initial=0)
        inside = dominated[:, s:]
        for i in range(e - s):
            best = int(before[i])
            if inside[i, :i].any():
                best = max(best, int(above[s:s + i][inside[i, :i]].max()))
            above[s + i] = best + 1
    return above.astype(np.int64) - 1


def nondominated_ranks(y: ArrayLike) -> np.ndarray:
    """The non-dominated rank of every row of ``y``: 0 for the Pareto front, 1 for the front of
    what is left, and so on (duplicates share a rank)."""
    y = _matrix(y)
    if len(y) == 0:
        return np.zeros(0, dtype=np.int64)
    rows, inverse = _distinct(y)
    if rows.shape[1] == 1:
        return inverse.astype(np.int64)
    ranks = _ranks_2d(rows) if rows.shape[1] == 2 else _ranks(rows)
    return np.take(ranks, inverse)


# Front rows that the elimination pass takes before the blocked comparison finishes the job.
_ELIMINATION_STEPS = 64


def pareto_mask(y: ArrayLike) -> np.ndarray:
    """Per row of ``y``: whether no other row dominates it.

    Rows in dominators-first order: the first one left is on the front and removes the rows it
    dominates. After ``_ELIMINATION_STEPS`` such steps, which remove most of a random cloud, the
    rows left are compared pairwise, block by block (no removed row can dominate one of them
    without a front row doing so too).
    """
    y = _matrix(y)
    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    rows, inverse = _distinct(y)
    if rows.shape[1] == 2:
        return np.take(_ranks_2d(rows) == 0, inverse)
    left = np.arange(len(rows))
    on_front = np.zeros(len(rows), dtype=bool)
    for _ in range(_ELIMINATION_STEPS):
        if len(left) == 0:
            break
        on_front[left[0]] = True
        rest = left[1:]
        left = rest[~np.all(rows[rest] >= rows[left[0]], axis=1)]
    if len(left):
        cols = np.ascontiguousarray(rows[left].T)
        step = _block_rows(len(left), len(cols))
        for s in range(0, len(left), step):
            e = min(len(left), s + step)
            on_front[left[s:e]] = ~_dominated_by_earlier(cols, s, e).any(axis=1)
    return np.take(on_front, inverse)


def _crowding_terms(y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Per point and objective, the crowding term; the sort order per objective; the spans.

    A term is the gap between the point's two neighbours along that objective, divided by the
    objective's span; the first and last point along it get inf. An objective on which every
    point is equal adds nothing (its ends would be arbitrary).
    """
    n, m = y.shape
    terms = np.zeros((n, m))
    orders, spans = [], np.zeros(m)
    for j in range(m):
        order = np.argsort(y[:, j], kind="stable")
        orders.append(order)
        v = y[order, j]
        spans[j] = v[-1] - v[0] if n else 0.0
        if spans[j] <= 0.0:
            continue
        gap = np.empty(n)
        gap[1:-1] = (v[2:] - v[:-2]) / spans[j]
        gap[0] = gap[-1] = math.inf
        terms[order, j] = gap
    return terms, orders, spans


def _sum_terms(terms: np.ndarray) -> np.ndarray:
    """Row sums, column by column in order, so that ``thin``'s updates add up identically."""
    total = np.zeros(len(terms))
    for j in range(terms.shape[1]):
        total = total + terms[:, j]
    return total


def crowding_distance(y: ArrayLike) -> np.ndarray:
    """NSGA-II's crowding distance of every row of ``y`` (meant for the rows of one front):
    the sum over objectives of the normalised gap between its neighbours, inf at each
    objective's ends. Larger means lonelier. Ties in an objective are ordered by row index."""
    y = _matrix(y)
    return _sum_terms(_crowding_terms(y)[0])


def thin(y: ArrayLike, k: int) -> np.ndarray:
    """Indices (ascending) of at most ``k`` rows of ``y`` that spread along the front: the most
    crowded row is dropped, distances are brought up to date, and so on until ``k`` are left.

    The extremes of every objective have infinite distance, so they stay while finite ones
    remain. Deterministic: among equally crowded rows the one with the highest index goes, so
    the lowest index wins. Each removal updates only its neighbours' distances (the spans that
    normalise them stay those of all rows, which the rows left share while their extremes stay),
    and a heap finds the next row to drop: O(n log n) for n rows.
    """
    y = _matrix(y)
    n, m = y.shape
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    terms_array, orders, spans_array = _crowding_terms(y)
    # Plain lists: the loop below reads and writes single values, which numpy makes slow.
    terms, values, spans = terms_array.tolist(), y.T.tolist(), spans_array.tolist()
    prev = [[-1] * n for _ in range(m)]
    succ = [[-1] * n for _ in range(m)]
    for j, order in enumerate(orders):
        o = order.tolist()
        for a, b in itertools.pairwise(o):
            succ[j][a], prev[j][b] = b, a
    distance = _sum_terms(terms_array).tolist()
    heap = [(d, -i) for i, d in enumerate(distance)]
    heapq.heapify(heap)
    alive = [True] * n
    for _ in range(n - k):
        while True:
            d, neg = heapq.heappop(heap)
            i = -neg
            if alive[i] and d == distance[i]:
                break
        alive[i] = False
        touched = set()
        for j in range(m):
            before, after = prev[j][i], succ[j][i]
            if before >= 0:
                succ[j][before] = after
            if after >= 0:
                prev[j][after] = before
            if spans[j] <= 0.0:
                continue
            for t in (before, after):
                if t >= 0:
                    lo, hi = prev[j][t], succ[j][t]
                    terms[t][j] = (math.inf if lo < 0 or hi < 0
                                   else (values[j][hi] - values[j][lo]) / spans[j])
                    touched.add(t)
        for t in touched:
            total = 0.0
            for j in range(m):
                total = total + terms[t][j]
            if total != distance[t]:
                distance[t] = total
                heapq.heappush(heap, (total, -t))
    return np.flatnonzero(np.array(alive))


def reference_point(y: ArrayLike, margin: float = 0.1) -> np.ndarray:
    """The point that hypervolumes of ``y``'s rows are measured to: the worst value of each
    objective pushed out by ``margin`` (10%) of the objective's range; when every row has the
    same value, by ``margin`` of its magnitude, or by 1.0 when that is 0.

    Pure: the same rows give the same point, whatever else a study holds.
    """
    y = _matrix(y)
    if len(y) == 0:
        raise ValueError("reference_point needs at least one point")
    worst, best = y.max(axis=0), y.min(axis=0)
    span = worst - best
    push = np.where(span > 0, margin * span, np.where(worst != 0, margin * np.abs(worst), 1.0))
    ref: np.ndarray = worst + push
    return ref


def _hv_2d(p: np.ndarray, ref: np.ndarray) -> float:
    """Area of distinct, lexicographically sorted, mutually non-dominated 2-D points to ``ref``
    (their second objective falls as the first rises)."""
    right = np.append(p[1:, 0], ref[0])
    return float(np.sum((right - p[:, 0]) * (ref[1] - p[:, 1])))


def _hv_3d(p: np.ndarray, ref: np.ndarray) -> float:
    """Volume of 3-D points (each better than ``ref`` everywhere) to ``ref``.

    Sweeps along the third objective, keeping the 2-D front of the points seen so far as two
    sorted lists (first objective rising, second falling) and its dominated area, which each
    new point grows by the strip between it and the old staircase. Dominated points add
    nothing and are skipped.
    """
    pts = p[np.argsort(p[:, 2], kind="stable")].tolist()
    rx, ry, rz = (float(v) for v in ref)
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    for i, (x, y, z) in enumerate(pts):
        k = bisect.bisect_left(xs, x)
        covered = (k > 0 and ys[k - 1] <= y) or (k < len(xs) and xs[k] == x and ys[k] <= y)
        if not covered:
            # The staircase points from k on that the new one dominates leave it; the strip
            # between the new point and the old staircase's heights is the area gained.
            height = ys[k - 1] if k > 0 else ry
            left, j = x, k
            while j < len(xs) and ys[j] >= y:
                area += (xs[j] - left) * (height - y)
                left, height = xs[j], ys[j]
                j += 1
            area += ((xs[j] if j < len(xs) else rx) - left) * (height - y)
            xs[k:j] = [x]
            ys[k:j] = [y]
        top = pts[i + 1][2] if i + 1 < len(pts) else rz
        volume += area * (top - z)
    return volume


def _hv_4d(p: np.ndarray, ref: np.ndarray) -> float:
    """Volume of 4-D points (each better than ``ref`` everywhere) to ``ref``.

    Slices along the fourth objective. Between two consecutive values the cross-section is the
    3-D volume of the points so far, which each new point grows by its exclusive contribution:
    its box less the volume of the other points limited to its box (``max(q, p)``). Only the
    3-D front of the points so far can limit it; points the new one dominates in 3-D leave it.
    """
    pts = p[np.argsort(p[:, 3], kind="stable")]
    ref3 = ref[:3]
    front = np.zeros((0, 3))
    section = volume = 0.0
    for i in range(len(pts)):
        q = pts[i, :3]
        if not np.any(np.all(front <= q, axis=1)):
            limited = np.maximum(front, q)
            section += float(np.prod(ref3 - q)) - (_hv_3d(limited, ref3) if len(limited) else 0.0)
            front = np.vstack([front[~np.all(front >= q, axis=1)], q])
        top = pts[i + 1, 3] if i + 1 < len(pts) else ref[3]
        volume += section * float(top - pts[i, 3])
    return volume


def hypervolume(y: ArrayLike, ref: ArrayLike) -> float:
    """The volume that the rows of ``y`` dominate, up to the reference point ``ref``.

    Exact for 1 to 3 objectives, and for 4 with at most ``HV_MAX_POINTS_4D`` points on the
    front; a larger 4-D front is first ``thin``-ned to that many (see the module docstring).
    Rows that are not strictly better than ``ref`` on every objective add nothing; neither do
    dominated rows or duplicates.
    """
    y = _matrix(y)
    r = np.asarray(ref, dtype=float).reshape(-1)
    m = y.shape[1]
    if len(r) != m:
        raise ValueError(f"the reference point has {len(r)} values for {m} objectives")
    if not 1 <= m <= 4:
        raise ValueError(f"hypervolume takes 1 to 4 objectives, got {m}")
    p = y[np.all(y < r, axis=1)]
    if len(p) == 0:
        return 0.0
    if m == 1:
        return float(r[0] - p.min())
    p = np.unique(p[pareto_mask(p)], axis=0)
    if m == 2:
        return _hv_2d(p, r)
    if m == 3:
        return _hv_3d(p, r)
    if len(p) > HV_MAX_POINTS_4D:
        p = p[thin(p, HV_MAX_POINTS_4D)]
    return _hv_4d(p, r)


def _exclusive(point: np.ndarray, others: np.ndarray, ref: np.ndarray) -> float:
    """The volume that ``point`` dominates and none of ``others`` does."""
    box = float(np.prod(np.clip(ref - point, 0.0, None)))
    if box == 0.0 or len(others) == 0:
        return box
    return box - hypervolume(np.maximum(others, point), ref)


def hypervolume_contributions(y: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """Per row of ``y``: the hypervolume lost without it (0 for dominated rows and for each of
    equal rows)."""
    y = _matrix(y)
    r = np.asarray(ref, dtype=float).reshape(-1)
    return np.array([_exclusive(y[i], np.delete(y, i, axis=0), r) for i in range(len(y))])


def select_by_hypervolume(y: ArrayLike, k: int, ref: ArrayLike) -> np.ndarray:
    """Indices (ascending) of ``k`` rows of ``y`` chosen greedily for hypervolume: each step adds
    the row that adds the most volume to those chosen (ties: lowest index).

    The greedy answer to the hypervolume subset selection problem, within a factor 1 - 1/e of
    the best subset. Lazy: a row's gain only shrinks as the subset grows, so a stale gain is an
    upper bound and only the leading row's gain is brought up to date, which gives exactly the
    plain greedy's choice.
    """
    y = _matrix(y)
    r = np.asarray(ref, dtype=float).reshape(-1)
    n = len(y)
    if k >= n:
        return np.arange(n)
    # With nothing chosen yet, a row's gain is its whole box.
    bounds = np.prod(np.clip(r - y, 0.0, None), axis=1)
    fresh = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k:
        i = int(np.argmax(bounds))
        if not fresh[i]:
            bounds[i] = _exclusive(y[i], y[chosen], r)
            fresh[i] = True
            continue
        chosen.append(i)
        bounds[i] = -math.inf
        fresh[:] = False
    return np.sort(np.array(chosen, dtype=np.int64))
