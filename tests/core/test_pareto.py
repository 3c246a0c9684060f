"""Pareto math: dominance, ranks, crowding, thinning, hypervolume and the reference point, each
against a brute force small enough to be obviously right."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kubetune.core import pareto

fast = settings(deadline=None, max_examples=150)


def matrices(max_rows: int, dims: tuple[int, ...] = (2, 3, 4), top: int = 5) -> st.SearchStrategy:
    """Integer-valued objective matrices: small values, so that ties and duplicates are common."""
    return st.sampled_from(dims).flatmap(
        lambda m: hnp.arrays(
            np.float64,
            st.tuples(st.integers(1, max_rows), st.just(m)),
            elements=st.integers(0, top).map(float),
        )
    )


def brute_ranks(y: np.ndarray) -> np.ndarray:
    """Peel fronts with the definition of dominance, pair by pair."""
    ranks = np.full(len(y), -1)
    left = set(range(len(y)))
    rank = 0
    while left:
        front = {i for i in left if not any(pareto.dominates(y[j], y[i]) for j in left)}
        ranks[list(front)] = rank
        left -= front
        rank += 1
    return ranks


def brute_hypervolume(y: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over the boxes [p, ref]: exact for real values, 2^n terms."""
    boxes = [p for p in y if np.all(p < ref)]
    total = 0.0
    for size in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * float(np.prod(ref - corner))
    return total


def counted_hypervolume(y: np.ndarray, ref: np.ndarray) -> float:
    """Unit cells of the integer grid below an integer ``ref`` that some point dominates."""
    cells = itertools.product(*(range(int(r)) for r in ref))
    return float(sum(bool(np.any(np.all(y <= np.array(c), axis=1))) for c in cells))


# --- dominance and ranks ----------------------------------------------------------------------


def test_dominates():
    assert pareto.dominates([1, 2], [1, 3])
    assert pareto.dominates([0, 0, 0], [1, 1, 1])
    assert not pareto.dominates([1, 2], [1, 2])  # equal points do not dominate each other
    assert not pareto.dominates([1, 3], [2, 2])
    assert not pareto.dominates([2, 2], [1, 3])


@fast
@given(y=matrices(30, dims=(1, 2, 3, 4)))
def test_ranks_match_brute_force(y):
    np.testing.assert_array_equal(pareto.nondominated_ranks(y), brute_ranks(y))
    np.testing.assert_array_equal(pareto.pareto_mask(y), brute_ranks(y) == 0)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_ranks_of_random_clouds_match_brute_force(m):
    # Real values, and more rows than the elimination pass of pareto_mask handles alone.
    y = np.random.default_rng(m).random((150, m))
    np.testing.assert_array_equal(pareto.nondominated_ranks(y), brute_ranks(y))
    np.testing.assert_array_equal(pareto.pareto_mask(y), brute_ranks(y) == 0)


def test_ranks_of_a_chain_and_of_one_front():
    chain = np.repeat(np.arange(50.0)[:, None], 3, axis=1)[::-1]
    np.testing.assert_array_equal(pareto.nondominated_ranks(chain), np.arange(50)[::-1])
    front = np.stack([np.arange(100.0), 99.0 - np.arange(100.0), np.zeros(100)], axis=1)
    assert (pareto.nondominated_ranks(front) == 0).all()
    assert pareto.pareto_mask(front).all()


def test_duplicates_share_a_rank_and_minus_zero_equals_zero():
    y = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0], [-0.0, 2.0], [2.0, 2.0]])
    np.testing.assert_array_equal(pareto.nondominated_ranks(y), [0, 0, 0, 0, 1])


def test_empty_and_malformed():
    assert pareto.nondominated_ranks(np.zeros((0, 3))).shape == (0,)
    assert pareto.pareto_mask(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match="2-D"):
        pareto.nondominated_ranks(np.zeros(3))


# --- crowding and thinning --------------------------------------------------------------------


def test_crowding_distance_of_a_line():
    y = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    # Interior: (next - prev) / span on each objective, summed; ends: inf.
    np.testing.assert_allclose(pareto.crowding_distance(y), [math.inf, 1.5, 1.5, math.inf])


def test_crowding_ignores_an_objective_with_no_spread():
    y = np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(pareto.crowding_distance(y), [math.inf, 1.0, math.inf])
    assert (pareto.crowding_distance(np.ones((3, 2))) == 0).all()


def naive_thin(y: np.ndarray, k: int) -> np.ndarray:
    """Recompute every distance after each removal; drop the highest index among the most
    crowded."""
    keep = list(range(len(y)))
    while len(keep) > k:
        d = pareto.crowding_distance(y[keep])
        worst = [keep[i] for i in np.flatnonzero(d == d.min())]
        keep.remove(max(worst))
    return np.array(keep)


@fast
@given(y=matrices(40, top=30), extra=st.integers(0, 10))
def test_thin_matches_full_recomputation(y, extra):
    front = np.unique(y[pareto.pareto_mask(y)], axis=0)
    k = 2 * front.shape[1] + extra  # room for every extreme
    np.testing.assert_array_equal(pareto.thin(front, k), naive_thin(front, k))


def test_thin_keeps_the_extremes_and_spreads():
    t = np.linspace(0.0, 1.0, 201) ** 3  # crowded near 0
    y = np.stack([t, 1.0 - t], axis=1)
    kept = pareto.thin(y, 11)
    assert len(kept) == 11
    assert kept[0] == 0 and kept[-1] == 200
    gaps = np.diff(y[kept, 0])
    assert gaps.max() < 3 * gaps.min()  # the cube's crowding is evened out


def test_thin_is_deterministic_and_the_lowest_index_wins():
    y = np.array([[0.0, 2.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    assert pareto.thin(y, 3).tolist() == [0, 1, 4]
    y = np.random.default_rng(0).random((300, 3))
    np.testing.assert_array_equal(pareto.thin(y, 40), pareto.thin(y.copy(), 40))
    assert pareto.thin(y, 400).tolist() == list(range(300))
    assert pareto.thin(y, 0).tolist() == []


# --- hypervolume ------------------------------------------------------------------------------


@fast
@given(y=matrices(8), lift=st.integers(0, 2))
def test_hypervolume_matches_inclusion_exclusion(y, lift):
    ref = np.full(y.shape[1], 5.0 + lift)  # some points touch or pass the reference point
    assert pareto.hypervolume(y, ref) == pytest.approx(brute_hypervolume(y, ref), abs=1e-9)


@fast
@given(y=matrices(40))
def test_hypervolume_matches_grid_counting(y):
    ref = np.full(y.shape[1], 5.0)
    assert pareto.hypervolume(y, ref) == counted_hypervolume(y, ref)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_of_real_points(m):
    rng = np.random.default_rng(10 + m)
    y = rng.random((8, m))
    ref = np.full(m, 1.1)
    assert pareto.hypervolume(y, ref) == pytest.approx(brute_hypervolume(y, ref), rel=1e-12)


def test_hypervolume_ignores_points_not_better_than_ref_on_every_axis():
    ref = np.array([4.0, 4.0, 4.0])
    y = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 4.0], [5.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert pareto.hypervolume(y, ref) == 27.0
    assert pareto.hypervolume(y[1:3], ref) == 0.0
    assert pareto.hypervolume(np.zeros((0, 3)), ref) == 0.0
    with pytest.raises(ValueError, match="reference point has 2 values"):
        pareto.hypervolume(y, [1.0, 1.0])


def test_a_large_4d_front_is_thinned_deterministically(monkeypatch):
    monkeypatch.setattr(pareto, "HV_MAX_POINTS_4D", 12)
    grid = np.array(list(itertools.product(range(5), repeat=4)), dtype=float)
    front = grid[grid.sum(axis=1) == 6]  # 44 mutually non-dominated points
    ref = np.full(4, 5.0)
    got = pareto.hypervolume(front, ref)
    assert got == counted_hypervolume(front[pareto.thin(front, 12)], ref)
    assert got < counted_hypervolume(front, ref)
    shuffled = front[np.random.default_rng(0).permutation(len(front))]
    assert pareto.hypervolume(shuffled, ref) == got  # the subset does not hang on row order


def test_contributions_and_greedy_selection():
    rng = np.random.default_rng(3)
    y = rng.random((9, 3))
    y = y[pareto.pareto_mask(y)]
    ref = pareto.reference_point(y)
    whole = pareto.hypervolume(y, ref)
    expected = [whole - pareto.hypervolume(np.delete(y, i, axis=0), ref) for i in range(len(y))]
    np.testing.assert_allclose(pareto.hypervolume_contributions(y, ref), expected, atol=1e-12)
    # Lazy greedy picks what the plain greedy picks.
    chosen: list[int] = []
    for _ in range(3):
        gains = [
            -1.0 if i in chosen else pareto.hypervolume(y[[*chosen, i]], ref)
            for i in range(len(y))
        ]
        chosen.append(int(np.argmax(gains)))
    assert pareto.select_by_hypervolume(y, 3, ref).tolist() == sorted(chosen)
    dup = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(pareto.hypervolume_contributions(dup, [3.0, 3.0]), [0, 0, 1])


# --- reference point --------------------------------------------------------------------------


def test_reference_point():
    y = np.array([[0.0, 10.0, -3.0, 0.0], [4.0, 10.0, -3.0, 0.0]])
    # Range 4 -> +0.4; no range: 10% of |10| and of |-3|; no range and 0: +1.
    np.testing.assert_allclose(pareto.reference_point(y), [4.4, 11.0, -2.7, 1.0])
    np.testing.assert_allclose(pareto.reference_point(y, margin=0.5), [6.0, 15.0, -1.5, 1.0])
    with pytest.raises(ValueError, match="at least one point"):
        pareto.reference_point(np.zeros((0, 2)))
