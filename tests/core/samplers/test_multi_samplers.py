"""Samplers for several objectives: the contract each keeps (written once, run for every name in
MULTI_SAMPLER_NAMES), NSGA-II's selection and constrained domination, MOTPE's split, the
auto rule, and a quality check against random search on ZDT1."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from kubetune.core import pareto
from kubetune.core.objectives import Objective
from kubetune.core.samplers import MULTI_SAMPLER_NAMES, get_multi_sampler, get_sampler, motpe, nsga2
from kubetune.core.samplers.base import multi_history_of
from kubetune.core.samplers.mo_auto import (
    GP_MAX_DIM,
    NSGA2_FROM,
    choose_multi_sampler,
    gp_max_observed,
)
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import CATEGORICAL, CONDITIONAL, MIXED, NUMERIC, SMALL

OBJECTIVES = (Objective("loss", minimize=True), Objective("acc", minimize=False))
HAS_GP = importlib.util.find_spec("kubetune.core.samplers.mogp") is not None


def values(space: Space, params: dict) -> dict[str, float]:
    """Two conflicting objectives on the unit cube (inactive axes read as 0.3): loss wants the
    cube's corner 0.2, acc wants 0.8, so the front runs between them."""
    u = np.nan_to_num(space.to_unit(params), nan=0.3)
    return {"loss": float(np.sum((u - 0.2) ** 2)), "acc": float(-np.sum((u - 0.8) ** 2))}


def history(space: Space, count: int, seed: int = 0, *, mixed_states: bool = True,
            infeasible_every: int = 0) -> list[Trial]:
    """``count`` trials at random points, most Succeeded with both objectives. With
    ``mixed_states`` every state a study holds appears (a Pruned trial lacks ``acc``: it counts
    as failed); with ``infeasible_every`` = k, every k-th trial broke a constraint."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(count):
        params = space.from_unit(rng.random(space.dim))
        state, vals = TrialState.SUCCEEDED, values(space, params)
        violation = 0.0 if infeasible_every else None
        if infeasible_every and i % infeasible_every == 1:
            violation = 0.5 + (i % 3)
        if mixed_states:
            if i % 7 == 3:
                state, vals = TrialState.FAILED, {}
            elif i % 11 == 5:
                state, vals = TrialState.PRUNED, {"loss": vals["loss"]}
            elif i % 13 == 6:
                state, vals = TrialState.RUNNING, {}
            elif i % 17 == 8:
                state, vals = TrialState.PENDING, {}
            elif i % 19 == 9:
                state = TrialState.LOST
            elif i % 23 == 10:
                params = {**params, "gone": 1}  # from before a spec change
        trials.append(Trial(number=i, params=params, state=state, values=vals,
                            violation=violation if vals else None))
    return trials


def ask(name: str, space: Space, trials: list[Trial], n: int, seed: int = 0) -> list[dict]:
    """``name``'s proposals; skips when it is the GP (or auto's choice is) and the GP's module
    is not there yet."""
    if not HAS_GP and (name == "gp" or (name == "auto" and choose_multi_sampler(
            space, multi_history_of(space, trials, OBJECTIVES)) == "gp")):
        pytest.skip("kubetune.core.samplers.mogp is not there yet")
    return get_multi_sampler(name).suggest(space, trials, n, objectives=OBJECTIVES, seed=seed)


def assert_admissible(space: Space, proposals: list[dict]) -> None:
    for p in proposals:
        assert space.contains(p), f"{p} is not in the space"
        for param in space.params:
            if param.name in p and param.kind == "int":
                assert type(p[param.name]) is int
            if param.name in p and param.kind == "float":
                assert type(p[param.name]) is float
        json.dumps(p)


def assert_new(space: Space, trials: list[Trial], proposals: list[dict]) -> None:
    taken = multi_history_of(space, trials, OBJECTIVES).seen
    keys = [space.key(p) for p in proposals]
    assert len(set(keys)) == len(keys), f"duplicates within the batch: {proposals}"
    assert not taken & set(keys), "proposes a configuration a trial already holds"


@pytest.fixture(params=MULTI_SAMPLER_NAMES)
def multi_name(request: pytest.FixtureRequest) -> str:
    return request.param


# --- the contract -----------------------------------------------------------------------------


def test_a_sampler_knows_its_name(multi_name):
    if multi_name == "gp" and not HAS_GP:
        pytest.skip("kubetune.core.samplers.mogp is not there yet")
    assert get_multi_sampler(multi_name).name == multi_name


# (prior trials, n): 180 prior trials leave 112 with every objective, past auto's hand-over.
@pytest.mark.parametrize(("prior", "n"), [(0, 1), (5, 4), (45, 3), (180, 3)])
def test_proposals_are_admissible_and_new(multi_name, prior, n):
    trials = history(MIXED, prior, seed=prior, infeasible_every=5)
    out = ask(multi_name, MIXED, trials, n)
    assert len(out) == n
    assert_admissible(MIXED, out)
    assert_new(MIXED, trials, out)


@pytest.mark.parametrize("space", [NUMERIC, CATEGORICAL], ids=["numeric", "cat"])
@pytest.mark.parametrize("prior", [0, 12, 70])
def test_other_spaces(multi_name, space, prior):
    trials = history(space, prior, seed=1, mixed_states=False)
    out = ask(multi_name, space, trials, 3)
    assert len(out) == 3
    assert_admissible(space, out)
    assert_new(space, trials, out)


@pytest.mark.parametrize("prior", [0, 12, 90])
def test_a_conditional_space_never_gets_an_inactive_parameter(multi_name, prior):
    trials = history(CONDITIONAL, prior, seed=2)
    out = ask(multi_name, CONDITIONAL, trials, 5)
    assert len(out) == 5
    assert_admissible(CONDITIONAL, out)
    assert_new(CONDITIONAL, trials, out)
    for p in out:
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        assert ("dampening" in p) == (p.get("nesterov") is False)


@pytest.mark.parametrize("prior", [24, 80])
def test_deterministic_and_seeded(multi_name, prior):
    trials = history(MIXED, prior, seed=3, infeasible_every=4)
    first = ask(multi_name, MIXED, trials, 4, seed=11)
    assert first == ask(multi_name, MIXED, list(trials), 4, seed=11)
    assert first != ask(multi_name, MIXED, trials, 4, seed=12)


@pytest.mark.parametrize("taken", [1, 3, 5])
def test_never_repeats_while_the_space_has_room(multi_name, taken):
    states = [TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.FAILED, TrialState.PENDING]
    points = [{"a": a, "c": c} for a in range(3) for c in ("x", "y")]
    trials = [
        Trial(i, points[i], states[i % 4],
              values=values(SMALL, points[i]) if states[i % 4] is TrialState.SUCCEEDED else {})
        for i in range(taken)
    ]
    out = ask(multi_name, SMALL, trials, 6 - taken)
    assert len(out) == 6 - taken
    assert_new(SMALL, trials, out)


def test_a_full_discrete_space_still_gets_proposals_from_the_models():
    """Enough history for NSGA-II to breed and MOTPE to model, in a space of six
    configurations that the history has nearly filled."""
    points = [{"a": a, "c": c} for a in range(3) for c in ("x", "y")]
    trials = [Trial(i, points[i % 5], TrialState.SUCCEEDED, values=values(SMALL, points[i % 5]))
              for i in range(60)]
    for name in ("nsga2", "tpe"):
        out = ask(name, SMALL, trials, 1)
        assert [SMALL.key(p) for p in out] == [SMALL.key(points[5])]


def test_running_trials_are_pending_points(multi_name):
    """Asking one at a time, with earlier proposals Running, never repeats and spreads."""
    trials = history(NUMERIC, 70, seed=7, mixed_states=False)
    batch: list[dict] = []
    for _ in range(6):
        running = [Trial(len(trials) + i, p, TrialState.RUNNING) for i, p in enumerate(batch)]
        batch += ask(multi_name, NUMERIC, trials + running, 1)
    assert_new(NUMERIC, trials, batch)
    u = np.array([NUMERIC.to_unit(p) for p in batch])
    assert np.max(np.abs(u[:, None] - u[None]).sum(-1)) > 0.05


@pytest.mark.parametrize("feasible", [True, False])
def test_every_trial_infeasible_or_failed(multi_name, feasible):
    trials = history(MIXED, 60, seed=8, mixed_states=False, infeasible_every=1)
    trials = [t if feasible else Trial(t.number, t.params, t.state, values=t.values,
                                       violation=1.0 + t.number % 5) for t in trials]
    trials += [Trial(60 + i, MIXED.from_unit(u), TrialState.FAILED)
               for i, u in enumerate(np.random.default_rng(9).random((10, MIXED.dim)))]
    out = ask(multi_name, MIXED, trials, 4)
    assert len(out) == 4
    assert_admissible(MIXED, out)
    assert_new(MIXED, trials, out)


@pytest.mark.parametrize("name", ["random", "sobol", "grid"])
@pytest.mark.parametrize("prior", [0, 30])
def test_plain_samplers_propose_as_for_one_objective(name, prior):
    trials = history(SMALL if name == "grid" else MIXED, prior, seed=4)
    space = SMALL if name == "grid" else MIXED
    expected = get_sampler(name).suggest(space, trials, 3, minimize=True, seed=5)
    assert get_multi_sampler(name).suggest(space, trials, 3, objectives=OBJECTIVES,
                                           seed=5) == expected


# --- NSGA-II ----------------------------------------------------------------------------------


def test_constrained_ranks_put_feasible_first_then_by_violation():
    y = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [-5.0, -5.0], [-6.0, -6.0], [3.0, 3.0]])
    violation = np.array([0.0, 0.0, 0.0, 2.0, 0.5, 0.5])
    # Feasible: rank 0 ([0, 0]), rank 1 ([1, 1] and [2, 0.5]); infeasible by violation, however
    # good their objectives.
    np.testing.assert_array_equal(nsga2.constrained_ranks(y, violation), [0, 1, 1, 3, 2, 2])


def test_survivors_take_whole_ranks_then_the_spread_of_the_next():
    t = np.linspace(0.0, 1.0, 9)
    front = np.stack([t, 1.0 - t], axis=1)
    dominated = front + 2.0
    y = np.concatenate([dominated[:2], front, [[9.0, 9.0]]])
    violation = np.zeros(len(y))
    violation[-1] = 0.1
    kept = nsga2.survivors(y, violation, 5)
    # Five of the front, its ends among them; nothing dominated or infeasible.
    assert kept.tolist() == (2 + pareto.thin(front, 5)).tolist()
    assert {2, 10} <= set(kept.tolist())
    assert nsga2.survivors(y, violation, 11).tolist() == list(range(11))
    assert nsga2.survivors(y, violation, 12).tolist() == list(range(12))


def test_parents_fold_the_generations_in_number_order():
    rng = np.random.default_rng(0)
    y = rng.random((75, 2))
    violation = np.where(rng.random(75) < 0.2, 1.0, 0.0)
    assert len(nsga2.parents(y[:29], violation[:29], 30)) == 0
    assert nsga2.parents(y[:59], violation[:59], 30).tolist() == list(range(30))
    second = np.arange(60)[nsga2.survivors(y[:60], violation[:60], 30)]
    # The trailing 15 rows make no whole generation yet.
    assert nsga2.parents(y, violation, 30).tolist() == second.tolist()


def test_nsga2_starts_with_sobol_until_a_generation_has_finished():
    trials = history(NUMERIC, nsga2.POPULATION_SIZE - 1, seed=0, mixed_states=False)
    expected = get_sampler("sobol").suggest(NUMERIC, trials, 4, minimize=True, seed=3)
    assert ask("nsga2", NUMERIC, trials, 4, seed=3) == expected
    trials = history(NUMERIC, nsga2.POPULATION_SIZE, seed=0, mixed_states=False)
    bred = ask("nsga2", NUMERIC, trials, 4, seed=3)
    assert bred != get_sampler("sobol").suggest(NUMERIC, trials, 4, minimize=True, seed=3)


def test_nsga2_breeds_from_feasible_parents():
    """Half the cube breaks a constraint, and its trials have the better objectives: the
    offspring still come from the feasible half."""
    space = Space.from_search_space(
        {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)})
    rng = np.random.default_rng(1)
    trials = []
    for i, u in enumerate(rng.random((60, 3))):
        p = space.from_unit(u)
        broke = u[0] > 0.5
        trials.append(Trial(i, p, TrialState.SUCCEEDED,
                            values={"loss": float(-u[0] + u[1]), "acc": float(u[0] + u[2])},
                            violation=u[0] - 0.5 if broke else 0.0))
    out = ask("nsga2", space, trials, 40, seed=2)
    assert np.mean([p["x0"] <= 0.5 for p in out]) >= 0.85


def test_nsga2_crossover_and_mutation_stay_in_the_cube():
    rng = np.random.default_rng(0)
    a, b = rng.random(2000), rng.random(2000)
    first, second = nsga2._sbx(a, b, rng.random(2000))
    assert ((first >= 0) & (first <= 1) & (second >= 0) & (second <= 1)).all()
    # One child on each side of the parents' midpoint; equal parents have equal children.
    middle = (a + b) / 2
    assert ((first <= middle + 1e-12) & (second >= middle - 1e-12)).all()
    same = nsga2._sbx(a, a, rng.random(2000))
    np.testing.assert_array_equal(same[0], a)
    np.testing.assert_array_equal(same[1], a)
    mutated = nsga2._polynomial_mutation(a, rng.random(2000))
    assert ((mutated >= 0) & (mutated <= 1)).all()
    assert np.median(np.abs(mutated - a)) < 0.1  # mostly small steps


# --- MOTPE ------------------------------------------------------------------------------------


def test_motpe_split_fills_by_rank_and_cuts_the_last_rank_for_hypervolume():
    front = np.array([[0.0, 1.0], [0.1, 0.5], [0.5, 0.1], [1.0, 0.0]])
    second = front + 1.0
    y = np.concatenate([second, front, [[0.0, 0.0]]])
    violation = np.zeros(len(y))
    violation[-1] = 1.0  # the best point broke a constraint: bad
    good, bad = motpe.split(y, violation, 6)
    # The whole front, then two of the second rank chosen for hypervolume.
    picked = pareto.select_by_hypervolume(second, 2, pareto.reference_point(second))
    assert good.tolist() == sorted([4, 5, 6, 7, *picked.tolist()])
    assert bad.tolist() == sorted(set(range(9)) - set(good.tolist()))
    assert 8 in bad
    good, _ = motpe.split(y, violation, 3)
    assert good.tolist() == (4 + pareto.select_by_hypervolume(
        front, 3, pareto.reference_point(front))).tolist()


def test_motpe_split_without_feasible_trials_leads_with_the_least_violating():
    y = np.random.default_rng(0).random((6, 2))
    violation = np.array([3.0, 1.0, 2.0, 1.0, 5.0, 0.5])
    good, bad = motpe.split(y, violation, 3)
    assert good.tolist() == [1, 3, 5]
    assert bad.tolist() == [0, 2, 4]
    good, bad = motpe.split(y, np.zeros(6), 0)
    assert good.tolist() == [] and bad.tolist() == list(range(6))


def test_motpe_follows_each_parameters_good_values():
    # f1 = x0 + g, f2 = 1 - x0 + g with g = 4 (x1 - 0.3)^2: every x0 is on the front, which
    # needs x1 = 0.3.
    space = Space.from_search_space(
        {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(2)})
    rng = np.random.default_rng(5)
    trials = []
    for i in range(80):
        params = space.from_unit(rng.random(2))
        g = 4 * (params["x1"] - 0.3) ** 2
        trials.append(Trial(i, params, TrialState.SUCCEEDED,
                            values={"loss": params["x0"] + g, "acc": -(1 - params["x0"] + g)}))
    out = ask("tpe", space, trials, 16, seed=1)
    rand = ask("random", space, trials, 16)
    assert np.median([abs(p["x1"] - 0.3) for p in out]) < 0.5 * np.median(
        [abs(p["x1"] - 0.3) for p in rand])
    assert np.ptp([p["x0"] for p in out]) > 0.3  # spread along the front


# --- auto -------------------------------------------------------------------------------------

WIDE = Space.from_search_space(
    {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(GP_MAX_DIM + 1)})


@pytest.mark.parametrize(
    ("space", "observed", "expected"),
    [
        (NUMERIC, 0, "gp"),
        (MIXED, gp_max_observed(2) - 1, "gp"),
        (MIXED, gp_max_observed(2), "tpe"),
        (MIXED, NSGA2_FROM, "nsga2"),
        (WIDE, 0, "sobol"),
        (WIDE, 9, "sobol"),
        (WIDE, 10, "tpe"),
        (WIDE, NSGA2_FROM - 1, "tpe"),
        (WIDE, NSGA2_FROM, "nsga2"),
    ],
)
def test_auto_choice(space, observed, expected):
    trials = history(space, observed, mixed_states=False)
    assert choose_multi_sampler(space, multi_history_of(space, trials, OBJECTIVES)) == expected


THREE = (Objective("loss", minimize=True), Objective("latency", minimize=True),
         Objective("size", minimize=True))


@pytest.mark.parametrize(("space", "observed", "expected"), [
    (NUMERIC, 0, "gp"), (NUMERIC, gp_max_observed(3) - 1, "gp"),
    (NUMERIC, gp_max_observed(3), "tpe"), (NUMERIC, NSGA2_FROM - 1, "tpe"),
    (NUMERIC, NSGA2_FROM, "nsga2"), (WIDE, 0, "sobol"), (WIDE, 10, "tpe"),
])
def test_auto_choice_for_three_objectives(space, observed, expected):
    trials = [replace(t, values={"loss": 1.0 + i, "latency": 2.0 - i, "size": float(i % 3)})
              for i, t in enumerate(history(space, observed, mixed_states=False))]
    assert choose_multi_sampler(space, multi_history_of(space, trials, THREE)) == expected


def test_auto_counts_only_trials_with_every_objective():
    trials = [Trial(t.number, t.params, TrialState.PRUNED, values={"loss": 1.0})
              for t in history(WIDE, 30, mixed_states=False)]
    assert choose_multi_sampler(WIDE, multi_history_of(WIDE, trials, OBJECTIVES)) == "sobol"


@pytest.mark.parametrize(("space", "count"), [(WIDE, 20), (NUMERIC, 210), (NUMERIC, 4)])
def test_auto_defers_to_the_chosen_sampler(space, count):
    trials = history(space, count, seed=2, mixed_states=False)
    chosen = choose_multi_sampler(space, multi_history_of(space, trials, OBJECTIVES))
    assert ask("auto", space, trials, 2, seed=4) == ask(chosen, space, trials, 2, seed=4)


# --- quality ----------------------------------------------------------------------------------

ZDT1 = Space.from_search_space(
    {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(5)})
ZDT1_OBJECTIVES = (Objective("f1", minimize=True), Objective("f2", minimize=True))
# f2 stays below 10 on the whole cube, so every trial counts toward the hypervolume; the best
# front reaches 12.1 - 1/3.
ZDT1_REF = np.array([1.1, 11.0])


def zdt1_hypervolume(name: str, budget: int, seed: int, batch: int) -> float:
    sampler = get_multi_sampler(name)
    trials: list[Trial] = []
    while len(trials) < budget:
        for p in sampler.suggest(ZDT1, trials, min(batch, budget - len(trials)),
                                 objectives=ZDT1_OBJECTIVES, seed=seed):
            x = np.array([p[f"x{i}"] for i in range(5)])
            g = 1.0 + 9.0 * float(np.mean(x[1:]))
            f2 = g * (1.0 - math.sqrt(x[0] / g))
            trials.append(Trial(len(trials), p, TrialState.SUCCEEDED,
                                values={"f1": float(x[0]), "f2": f2}))
    y = np.array([[t.values["f1"], t.values["f2"]] for t in trials])
    return pareto.hypervolume(y, ZDT1_REF)


@pytest.mark.parametrize(
    ("name", "budget", "batch", "each", "median"),
    # Measured per seed (0-3), against random search's: nsga2 at 200 trials ahead by 0.46 to
    # 0.93 (medians 0.71 apart), tpe at 60 (sequential) by 0.46 to 1.37 (medians 1.24 apart).
    # The margins asked for are under half of those.
    [("nsga2", 200, 10, 0.2, 0.35), ("tpe", 60, 1, 0.2, 0.6)],
)
def test_beats_random_search_on_zdt1(name, budget, batch, each, median):
    seeds = range(4)
    ours = np.array([zdt1_hypervolume(name, budget, s, batch) for s in seeds])
    rand = np.array([zdt1_hypervolume("random", budget, s, batch) for s in seeds])
    assert (ours > rand + each).all(), (ours, rand)
    assert np.median(ours) > np.median(rand) + median, (ours, rand)
