"""decide(): one table-driven test per lifecycle decision, then status size and speed."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from kubetune.core.plan import Creation, Finish, Phase, decide
from kubetune.core.samplers.grid import GridSampler
from kubetune.core.spec import SpecError, StudyStatus, parse_spec, space_of
from kubetune.core.trials import Trial, TrialState

PEN, RUN, OK, FAIL, PRUNED, STOPPED, LOST = (
    TrialState.PENDING,
    TrialState.RUNNING,
    TrialState.SUCCEEDED,
    TrialState.FAILED,
    TrialState.PRUNED,
    TrialState.STOPPED,
    TrialState.LOST,
)
NOW = 1_000_000.0

BASE: dict[str, Any] = {
    "objective": {"metric": "val_loss", "direction": "minimize"},
    "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "algorithm": {"name": "random", "seed": 7},
    "budget": {"maxTrials": 10, "parallelism": 3, "maxFailedTrials": 2, "trialTimeoutSeconds": 100},
    "jobTemplate": {
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "trainer", "image": "kubetune/trainer:0.1.0"}],
                }
            }
        }
    },
}
GRID = {
    "algorithm": {"name": "grid", "seed": 7},
    "searchSpace": {"opt": {"type": "categorical", "values": ["adam", "sgd"]}},
}


def spec(**overrides: Any) -> dict[str, Any]:
    """BASE with top-level sections merged one level deep (None removes a key)."""
    out = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "searchSpace":
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    for section in list(out.values()):
        if isinstance(section, dict):
            for k in [k for k, v in section.items() if v is None]:
                del section[k]
    return out


def budget(**kw: Any) -> dict[str, Any]:
    return {"budget": kw}


def tr(number: int, state: TrialState, value: float | None = None, **kw: Any) -> Trial:
    params = kw.pop("params", {"x": 0.5})
    return Trial(number=number, params=params, state=state, value=value, **kw)


def many(state: TrialState, n: int, start: int = 0, value: float | None = 0.5) -> list[Trial]:
    if state is not OK and state is not PRUNED:
        value = None
    return [tr(start + i, state, value) for i in range(n)]


class FakeSuggest:
    """Proposes x = 0.01 * k for the k-th call's proposals; remembers what it was asked."""

    def __init__(self, limit: int | None = None) -> None:
        self.calls: list[tuple[tuple[Trial, ...], int]] = []
        self.limit = limit

    def __call__(self, spec: Any, trials: Any, n: int) -> list[dict[str, Any]]:
        self.calls.append((tuple(trials), n))
        n = n if self.limit is None else min(n, self.limit)
        return [{"x": 0.01 * i} for i in range(n)]


def grid_suggest(spec_: Any, trials: Any, n: int) -> list[dict[str, Any]]:
    space = space_of(spec_)
    return GridSampler().suggest(space, trials, n, minimize=True, seed=spec_.algorithm.seed)


def plan_of(spec_: dict, trials: list[Trial], now: float = NOW, **kw: Any):
    is_grid = spec_["algorithm"]["name"] == "grid"
    kw.setdefault("suggest", grid_suggest if is_grid else FakeSuggest())
    return decide(spec_, trials, now, **kw)


def created(plan) -> list[int]:
    return [c.number for c in plan.create]


def stopped(plan) -> list[tuple[int, TrialState, str]]:
    return [(s.number, s.state, s.reason) for s in plan.stop]


def finished(plan) -> tuple[str, str] | None:
    return None if plan.finished is None else (plan.finished.condition, plan.finished.reason)


# (id, spec, trials, expected created numbers, stops, finished, phase)
LIFECYCLE = [
    ("empty study fills parallelism", spec(), [], [0, 1, 2], [], None, Phase.PENDING),
    ("partial fill", spec(), many(RUN, 2), [2], [], None, Phase.RUNNING),
    (
        "pending counts as active",
        spec(),
        [*many(RUN, 1), *many(PEN, 2, 1)],
        [],
        [],
        None,
        "Running",
    ),
    ("budget caps the fill", spec(), [*many(OK, 8), *many(RUN, 1, 8)], [9], [], None, "Running"),
    (
        "budget spent, one running",
        spec(),
        [*many(OK, 9), *many(RUN, 1, 9)],
        [],
        [],
        None,
        "Running",
    ),
    (
        "max trials reached",
        spec(),
        many(OK, 10),
        [],
        [],
        ("Succeeded", "MaxTrialsReached"),
        Phase.SUCCEEDED,
    ),
    (
        "failed and pruned count toward maxTrials",
        spec(budget={"maxFailedTrials": 5}),
        [*many(OK, 5), *many(FAIL, 2, 5), *many(PRUNED, 3, 7)],
        [],
        [],
        ("Succeeded", "MaxTrialsReached"),
        Phase.SUCCEEDED,
    ),
    (
        "stopped and lost trials do not count",
        spec(),
        [*many(OK, 8), *many(STOPPED, 3, 8), *many(LOST, 3, 11)],
        [14, 15],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "numbers never reused after a lost trial",
        spec(),
        [*many(OK, 3), *many(LOST, 1, 3)],
        [4, 5, 6],
        [],
        None,
        Phase.RUNNING,
    ),
    ("suspended: no new trials", spec(suspend=True), many(RUN, 1), [], [], None, Phase.SUSPENDED),
    (
        "suspended study still finishes",
        spec(suspend=True),
        many(OK, 10),
        [],
        [],
        ("Succeeded", "MaxTrialsReached"),
        Phase.SUCCEEDED,
    ),
    (
        "goal reached (minimize) stops the active trials",
        spec(objective={"goal": 0.05}),
        [tr(0, OK, 0.2), tr(1, OK, 0.04), tr(2, RUN), tr(3, PEN)],
        [],
        [(2, STOPPED, "GoalReached"), (3, STOPPED, "GoalReached")],
        ("Succeeded", "GoalReached"),
        Phase.SUCCEEDED,
    ),
    (
        "goal met exactly (minimize)",
        spec(objective={"goal": 0.05}),
        [tr(0, OK, 0.05)],
        [],
        [],
        ("Succeeded", "GoalReached"),
        Phase.SUCCEEDED,
    ),
    (
        "goal not reached (minimize)",
        spec(objective={"goal": 0.05}),
        [tr(0, OK, 0.06)],
        [1, 2, 3],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "goal reached (maximize)",
        spec(objective={"direction": "maximize", "goal": 0.95}),
        [tr(0, OK, 0.97), tr(1, RUN)],
        [],
        [(1, STOPPED, "GoalReached")],
        ("Succeeded", "GoalReached"),
        Phase.SUCCEEDED,
    ),
    (
        "goal not reached (maximize)",
        spec(objective={"direction": "maximize", "goal": 0.95}),
        [tr(0, OK, 0.04)],
        [1, 2, 3],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "a pruned value does not reach the goal",
        spec(objective={"goal": 0.05}),
        [tr(0, PRUNED, 0.01)],
        [1, 2, 3],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "failures within maxFailedTrials",
        spec(),
        many(FAIL, 2),
        [2, 3, 4],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "too many failed trials",
        spec(),
        [*many(FAIL, 3), tr(3, RUN)],
        [],
        [(3, STOPPED, "TooManyFailedTrials")],
        ("Failed", "TooManyFailedTrials"),
        Phase.FAILED,
    ),
    (
        "goal wins over failures",
        spec(objective={"goal": 0.05}),
        [*many(FAIL, 3), tr(3, OK, 0.01)],
        [],
        [],
        ("Succeeded", "GoalReached"),
        Phase.SUCCEEDED,
    ),
    (
        "no successful trials",
        spec(budget={"maxFailedTrials": 20}),
        [*many(FAIL, 6), *many(PRUNED, 4, 6)],
        [],
        [],
        ("Failed", "NoSuccessfulTrials"),
        Phase.FAILED,
    ),
    (
        "grid exhausted",
        spec(**GRID),
        [tr(0, OK, 0.3, params={"opt": "adam"}), tr(1, OK, 0.2, params={"opt": "sgd"})],
        [],
        [],
        ("Succeeded", "GridExhausted"),
        Phase.SUCCEEDED,
    ),
    (
        "grid used up while a trial runs",
        spec(**GRID),
        [tr(0, OK, 0.3, params={"opt": "adam"}), tr(1, RUN, params={"opt": "sgd"})],
        [],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "grid exhausted without success",
        spec(**GRID),
        [tr(0, FAIL, params={"opt": "adam"}), tr(1, PRUNED, 0.4, params={"opt": "sgd"})],
        [],
        [],
        ("Failed", "NoSuccessfulTrials"),
        Phase.FAILED,
    ),
    (
        "lost grid points are tried again",
        spec(**GRID),
        [tr(0, OK, 0.3, params={"opt": "adam"}), tr(1, LOST, params={"opt": "sgd"})],
        [2],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "timed-out trial fails and is replaced",
        spec(),
        [tr(0, RUN, start_time=NOW - 101), tr(1, RUN, start_time=NOW - 99), tr(2, RUN)],
        [3],
        [(0, FAIL, "TimedOut")],
        None,
        Phase.RUNNING,
    ),
    (
        "pending trials do not time out",
        spec(),
        [tr(0, PEN, start_time=NOW - 1000)],
        [1, 2],
        [],
        None,
        Phase.PENDING,
    ),
    (
        "no trialTimeoutSeconds, no timeout",
        spec(budget={"trialTimeoutSeconds": None}),
        [tr(0, RUN, start_time=NOW - 10**6)],
        [1, 2],
        [],
        None,
        Phase.RUNNING,
    ),
    (
        "timeouts can end the study",
        spec(),
        [*many(FAIL, 2), tr(2, RUN, start_time=NOW - 500), tr(3, RUN)],
        [],
        [(2, FAIL, "TimedOut"), (3, STOPPED, "TooManyFailedTrials")],
        ("Failed", "TooManyFailedTrials"),
        Phase.FAILED,
    ),
    (
        "resume after raising maxTrials",
        spec(budget={"maxTrials": 12}),
        many(OK, 10),
        [10, 11],
        [],
        None,
        Phase.RUNNING,
    ),
]


@pytest.mark.parametrize(
    ("spec_", "trials", "create", "stops", "end", "phase"),
    [c[1:] for c in LIFECYCLE],
    ids=[c[0] for c in LIFECYCLE],
)
def test_lifecycle(spec_, trials, create, stops, end, phase):
    plan = plan_of(spec_, trials)
    assert created(plan) == create
    assert stopped(plan) == stops
    assert finished(plan) == end
    assert plan.phase == phase
    assert plan.suspended == bool(spec_.get("suspend"))


def test_numbers_continue_from_next_trial_when_jobs_are_gone():
    # Trials 3 and 4 were Lost and their Jobs deleted: only status.nextTrial remembers them.
    plan = plan_of(spec(), many(OK, 3), next_trial=5)
    assert created(plan) == [5, 6, 7]
    assert plan.status["nextTrial"] == 8
    # A next_trial below the highest number does not pull numbers back.
    assert created(plan_of(spec(), many(OK, 3), next_trial=1)) == [3, 4, 5]


def test_created_trials_get_the_sampler_params_and_the_sampler_sees_the_plan():
    suggest = FakeSuggest()
    trials = [tr(0, RUN, start_time=NOW - 500), tr(1, OK, 0.3)]
    plan = plan_of(spec(), trials, suggest=suggest)
    assert plan.create == (
        Creation(2, {"x": 0.0}),
        Creation(3, {"x": 0.01}),
        Creation(4, {"x": 0.02}),
    )
    [(seen, n)] = suggest.calls
    assert n == 3
    # The timed-out trial reaches the sampler as Failed, not as a pending point.
    assert [(t.number, t.state) for t in seen] == [(0, FAIL), (1, OK)]


def test_a_sampler_that_runs_short_creates_fewer():
    plan = plan_of(spec(), [], suggest=FakeSuggest(limit=1))
    assert created(plan) == [0]
    assert plan.status["nextTrial"] == 1
    assert plan.status["trials"]["pending"] == 1


def test_sampler_is_not_asked_for_nothing():
    suggest = FakeSuggest()
    plan_of(spec(), many(RUN, 3), suggest=suggest)
    assert suggest.calls == []


def test_duplicate_trial_numbers_are_refused():
    with pytest.raises(ValueError, match="trial number 1 appears twice"):
        plan_of(spec(), [tr(1, OK, 0.1), tr(1, RUN)])


def test_plain_records_are_accepted():
    plan = plan_of(
        spec(), [{"number": 0, "params": {"x": 0.5}, "state": "Succeeded", "value": 0.2}]
    )
    assert created(plan) == [1, 2, 3]
    assert plan.status["bestTrial"]["number"] == 0


def test_finish_messages_say_what_happened():
    goal = plan_of(spec(objective={"goal": 0.05}), [tr(3, OK, 0.04), tr(4, OK, 0.01)])
    assert goal.finished == Finish(
        "Succeeded", "GoalReached", "trial 4 reached val_loss 0.01, meeting the goal <= 0.05"
    )
    assert goal.summary == goal.finished.message
    failed = plan_of(spec(), [*many(FAIL, 2), tr(2, FAIL, reason="ExitCode", message="exit 1")])
    assert failed.finished.message == (
        "3 trials failed, more than maxFailedTrials 2; the last, trial 2: ExitCode: exit 1"
    )
    timed_out = plan_of(spec(), [tr(0, RUN, start_time=NOW - 250)])
    assert timed_out.stop[0].message == "ran 250 s, past trialTimeoutSeconds 100"
    stopped_ = plan_of(spec(objective={"goal": 0.05}), [tr(0, OK, 0.01), tr(1, RUN)])
    assert stopped_.stop[0].message.startswith("study ended: trial 0 reached val_loss")


# Early stopping wiring: five finished peers at 0.4 by step 2, one running trial at 0.8.
PEERS = [tr(i, OK, 0.4, curve=((1, 0.5), (2, 0.4))) for i in range(5)]
MEDIAN = {"earlyStopping": {"name": "median", "minStep": 1}}


def test_early_stopping_prunes_and_replaces_in_one_plan():
    trials = [*PEERS, tr(5, RUN, curve=((1, 0.9), (2, 0.8))), tr(6, RUN, curve=((1, 0.3),))]
    plan = plan_of(spec(**MEDIAN, budget={"maxTrials": 20}), trials)
    [stop] = plan.stop
    assert (stop.number, stop.state, stop.reason) == (5, PRUNED, "EarlyStopped")
    assert "worse than the median 0.4 of 5 trials" in stop.message
    assert stop.message.startswith("val_loss 0.8")
    assert created(plan) == [7, 8]
    assert plan.status["trials"]["pruned"] == 1


def test_without_early_stopping_nothing_is_pruned():
    trials = [*PEERS, tr(5, RUN, curve=((1, 0.9), (2, 0.8)))]
    assert plan_of(spec(budget={"maxTrials": 20}), trials).stop == ()


def test_pruning_the_last_trial_can_spend_the_budget():
    trials = [*PEERS, tr(5, RUN, curve=((1, 0.9), (2, 0.8)))]
    plan = plan_of(spec(**MEDIAN, budget={"maxTrials": 6}), trials)
    assert stopped(plan) == [(5, PRUNED, "EarlyStopped")]
    assert finished(plan) == ("Succeeded", "MaxTrialsReached")


def test_asha_is_wired_too():
    trials = [
        tr(0, OK, 0.1, curve=((1, 0.1),)),
        tr(1, OK, 0.2, curve=((1, 0.2),)),
        tr(2, RUN, curve=((1, 0.9), (2, 0.8))),
    ]
    asha = {"earlyStopping": {"name": "asha", "minStep": 1, "maxStep": 27, "reductionFactor": 3}}
    assert stopped(plan_of(spec(**asha), trials)) == [(2, PRUNED, "EarlyStopped")]


def test_status_counts_best_and_leaderboard():
    trials = [
        tr(0, OK, 0.30, job="s-0", retries=2),
        tr(1, OK, 0.10, job="s-1"),
        tr(2, OK, 0.20, job="s-2"),
        tr(3, PRUNED, 0.01),  # partial training: never ranked
        tr(4, FAIL, retries=3),
        tr(5, STOPPED, 0.05),
        tr(6, LOST),
        tr(7, RUN, retries=1),
    ]
    status = plan_of(spec(budget={"maxTrials": 20}), trials).status
    assert status["trials"] == {
        "pending": 2,  # the two created by this plan
        "running": 1,
        "succeeded": 3,
        "failed": 1,
        "pruned": 1,
        "stopped": 1,
        "lost": 1,
        "total": 10,
        "retries": 6,  # pods re-run, apart from the failed count
        "infeasible": 0,  # no constraints
    }
    assert status["nextTrial"] == 10
    assert status["bestTrial"] == {"number": 1, "params": {"x": 0.5}, "value": 0.1, "job": "s-1"}
    assert [e["number"] for e in status["leaderboard"]] == [1, 2, 0]
    assert status["leaderboard"][0] == status["bestTrial"]
    # What decide writes is what the CRD's status schema accepts.
    assert StudyStatus.model_validate(status).best_trial.job == "s-1"
    maximize = plan_of(spec(objective={"direction": "maximize"}, budget={"maxTrials": 20}), trials)
    assert [e["number"] for e in maximize.status["leaderboard"]] == [0, 2, 1]


def test_leaderboard_ties_rank_the_older_trial_first_and_stop_at_ten():
    trials = [tr(i, OK, float(i // 2)) for i in range(30)]
    board = plan_of(spec(budget={"maxTrials": 30}), trials).status["leaderboard"]
    assert [e["number"] for e in board] == list(range(10))


def test_no_best_before_a_success():
    status = plan_of(spec(), many(RUN, 1)).status
    assert status["bestTrial"] is None
    assert status["leaderboard"] == []


def test_summary_for_a_person():
    plan = plan_of(spec(), [tr(0, OK, 0.25), tr(1, RUN)])
    assert plan.summary == "1 running, 2 pending; 1 of 10 trials done; best val_loss 0.25 (trial 0)"
    suspended = plan_of(spec(suspend=True), [tr(0, RUN)])
    assert (
        suspended.summary == "suspended, no new trials: 1 running, 0 pending; 0 of 10 trials done"
    )


def big_history(n: int) -> list[Trial]:
    """n trials with long params and curves, of every state, the last few running."""
    states = [OK, OK, OK, FAIL, PRUNED, STOPPED, LOST]
    params = {f"param_{k:02d}": "categorical-value-" * 3 for k in range(20)}
    out = []
    for i in range(n - 8):
        state = states[i % len(states)]
        curve = tuple((s, 1.0 / (s + i % 97)) for s in range(1, 201))
        value = curve[-1][1] if state in (OK, PRUNED, STOPPED) else None
        out.append(tr(i, state, value, params=params, curve=curve, job=f"study-abcde-{i}"))
    for i in range(n - 8, n):
        curve = tuple((s, 2.0 / s) for s in range(1, 101))
        out.append(tr(i, RUN, params=params, curve=curve, start_time=NOW - 10))
    return out


@pytest.fixture(scope="module")
def big() -> list[Trial]:
    return big_history(10_000)


BIG_BUDGET = {"maxTrials": 10_000, "parallelism": 10, "maxFailedTrials": 10_000}


def test_status_stays_under_64_kib_at_10000_trials(big):
    plan = plan_of(spec(**MEDIAN, budget=BIG_BUDGET), big)
    size = len(json.dumps(plan.status))
    print(f"status JSON at 10,000 trials: {size} bytes")
    assert size < 64 * 1024
    StudyStatus.model_validate(plan.status)
    assert len(plan.status["leaderboard"]) == 10


def test_decide_on_10000_trials(big, capsys):
    """Reports the time (no assertion on it: the machine is shared)."""
    t0 = time.perf_counter()
    plan = plan_of(spec(**MEDIAN, budget=BIG_BUDGET), big)
    elapsed = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\ndecide() on 10,000 trials (median rule, fake sampler): {elapsed * 1000:.0f} ms")
    # The eight running trials trail their peers at step 100: all pruned, all replaced.
    assert [s.state for s in plan.stop] == [PRUNED] * 8
    assert len(plan.create) == 10


def test_default_sampler_is_kubetune_core_suggest():
    trials = [tr(0, OK, 0.3, params={"x": 0.25})]
    first = decide(spec(), trials, NOW)
    again = decide(spec(), trials, NOW)
    assert created(first) == [1, 2, 3]
    assert first.create == again.create  # deterministic in (spec, trials)
    assert all(0.0 <= c.params["x"] <= 1.0 for c in first.create)
    assert len({c.params["x"] for c in first.create}) == 3


def test_status_stays_under_64_kib_with_the_longest_params():
    # 64 parameters, 63-character names, 256-character values: ~21 KB per ranked trial.
    params = {f"p{k:02d}".ljust(63, "x"): chr(97 + k % 26) * 256 for k in range(64)}
    trials = [tr(i, OK, float(i), params=params, job=f"study-abcde-{i}") for i in range(20)]
    status = plan_of(spec(budget={"maxTrials": 30}), trials).status
    size = len(json.dumps(status))
    assert size < 64 * 1024, size
    assert 1 <= len(status["leaderboard"]) < 10
    assert status["leaderboard"][0] == status["bestTrial"]
    StudyStatus.model_validate(status)


ENQUEUE_SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "n": {"type": "int", "low": 1, "high": 9, "step": 2},
    "opt": {"type": "categorical", "values": ["adam", "sgd"]},
}


class SpaceSuggest:
    """Proposes the same full configuration every time."""

    def __call__(self, spec: Any, trials: Any, n: int) -> list[dict[str, Any]]:
        return [{"x": 0.25, "n": 5, "opt": "sgd"}] * n


def test_enqueued_configurations_are_the_first_trials_in_order():
    s = spec(searchSpace=ENQUEUE_SPACE, budget={"parallelism": 3},
             enqueue=[{"x": 1, "n": 3, "opt": "adam"}, {"opt": "adam"}])
    plan = plan_of(s, [], suggest=SpaceSuggest())
    assert plan.create == (
        Creation(0, {"x": 1.0, "n": 3, "opt": "adam"}),  # as given, 1 as the float it is
        Creation(1, {"x": 0.25, "n": 5, "opt": "adam"}),  # what it leaves out is proposed
        Creation(2, {"x": 0.25, "n": 5, "opt": "sgd"}),  # past the queue: the algorithm's
    )
    assert isinstance(plan.create[0].params["x"], float)


def test_an_enqueued_configuration_is_used_once_for_its_trial_number():
    s = spec(searchSpace=ENQUEUE_SPACE, enqueue=[{"x": 0.5, "n": 1, "opt": "adam"}])
    trials = [tr(0, OK, 0.1, params={"x": 0.5, "n": 1, "opt": "adam"})]
    plan = plan_of(s, trials, suggest=SpaceSuggest())
    assert [c.params for c in plan.create] == [{"x": 0.25, "n": 5, "opt": "sgd"}] * 3


@pytest.mark.parametrize(("entry", "field", "words"), [
    ({"y": 0.5}, "spec.enqueue[0].y", "use one of 'x', 'n', 'opt'"),
    ({"opts": "sgd"}, "spec.enqueue[0].opts", "did you mean 'opt'"),
    ({"x": 1.5}, "spec.enqueue[0].x", "0 to 1"),
    ({"n": 4}, "spec.enqueue[0].n", "on steps of 2 from 1"),
    ({"opt": "rmsprop"}, "spec.enqueue[0].opt", "one of 'adam', 'sgd'"),
])
def test_an_enqueued_value_the_space_cannot_take_is_refused_by_name(entry, field, words):
    with pytest.raises(SpecError) as err:
        parse_spec(spec(searchSpace=ENQUEUE_SPACE, enqueue=[entry]))
    assert field in str(err.value) and words in str(err.value)
