"""The local run's journal: replay, refusal of another study, and the view it gives."""

from __future__ import annotations

import json

import pytest
from kubetune._cli import journal as journals
from kubetune._cli.journal import Journal, JournalError, journal_view, parse_journal
from kubetune.core import protocol
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState

SPEC = {"objective": {"metric": "loss", "direction": "minimize"},
        "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"maxTrials": 4, "parallelism": 2},
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}}}


def lines(*records: dict) -> list[str]:
    return [json.dumps(r) for r in records]


RUN = {"kind": "run", "name": "demo", "uid": "u-1", "spec": SPEC, "pid": 1, "time": 0}
DONE = TrialResult(TrialState.SUCCEEDED, None, 0.5, 3, ((1, 0.9), (3, 0.5)))


def result(n: int, r: TrialResult = DONE) -> dict:
    return {"kind": "result", "number": n, "result": protocol.encode_result(r), "start": 10.0,
            "end": 12.5}


def test_replay_keeps_params_results_and_the_unfinished():
    state = parse_journal(lines(
        RUN, {"kind": "trial", "number": 0, "params": {"x": 0.1}, "time": 10.0},
        {"kind": "trial", "number": 1, "params": {"x": 0.7}, "time": 10.0}, result(0),
    ))
    assert (state.name, state.uid) == ("demo", "u-1")
    assert state.trials == {0: {"x": 0.1}, 1: {"x": 0.7}}
    assert state.results[0].result == DONE and state.results[0].end == 12.5
    assert state.unfinished == [1] and state.next_trial == 2


def test_a_line_cut_short_by_a_kill_is_ignored_but_damage_elsewhere_is_not():
    cut = [*lines(RUN, {"kind": "trial", "number": 0, "params": {}, "time": 0}), '{"kind": "res']
    assert parse_journal(cut).trials == {0: {}}
    with pytest.raises(JournalError, match="line 2: not JSON"):
        parse_journal([cut[0], cut[2], cut[1]])


def test_open_refuses_another_study_or_search_space_and_accepts_a_new_budget(tmp_path):
    path = tmp_path / "j.jsonl"
    journal, state = Journal.open(path, "demo", SPEC)
    journal.close()
    uid = state.uid
    bigger = {**SPEC, "budget": {"maxTrials": 8, "parallelism": 2}}
    journal, state = Journal.open(path, "demo", bigger)
    journal.close()
    assert state.uid == uid and state.spec["budget"]["maxTrials"] == 8
    with pytest.raises(JournalError, match="belongs to study 'demo', not 'other'"):
        Journal.open(path, "other", SPEC)
    moved = {**SPEC, "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 2.0}}}
    with pytest.raises(JournalError, match=r"spec\.searchSpace differs"):
        Journal.open(path, "demo", moved)
    flipped = {**SPEC, "objective": {"metric": "loss", "direction": "maximize"}}
    with pytest.raises(JournalError, match=r"spec\.objective differs"):
        Journal.open(path, "demo", flipped)


def test_one_run_at_a_time(tmp_path):
    path = tmp_path / "j.jsonl"
    journal, _ = Journal.open(path, "demo", SPEC)
    try:
        with pytest.raises(JournalError, match=r"another run \(pid \d+\) is using this journal"):
            Journal.open(path, "demo", SPEC)
    finally:
        journal.close()
    Journal.open(path, "demo", SPEC)[0].close()  # free again once the first is closed


def test_view_of_a_stopped_run_shows_its_unfinished_trials_interrupted():
    state = parse_journal(lines(
        RUN, {"kind": "trial", "number": 0, "params": {"x": 0.1}, "time": 10.0},
        {"kind": "trial", "number": 1, "params": {"x": 0.7}, "time": 11.0}, result(0),
    ))
    dead = journal_view(state, live=False, path="j.jsonl")
    assert [(t.number, t.state) for t in dead.trials] == [(0, TrialState.SUCCEEDED),
                                                          (1, TrialState.STOPPED)]
    assert dead.trials[1].reason == "Interrupted" and dead.state == "Interrupted"
    assert dead.outcome is None and dead.trials[0].curve == ((1, 0.9), (3, 0.5))
    live = journal_view(state, live=True)
    assert live.trials[1].state is TrialState.RUNNING and live.state == "Running"
    assert live.events[0].reason == "TrialSucceeded"


def test_view_of_a_finished_run_has_its_terminal_condition():
    state = parse_journal(lines(
        RUN, {"kind": "trial", "number": 0, "params": {"x": 0.1}, "time": 10.0}, result(0),
        {"kind": "finished", "condition": "Succeeded", "reason": "MaxTrialsReached",
         "message": "1 of 1 trials done", "time": 13.0},
    ))
    view = journal_view(state, live=False)
    assert view.outcome == "Succeeded" and view.state == "MaxTrialsReached"


def test_live_view_of_a_missing_journal_says_how_to_make_one(tmp_path):
    with pytest.raises(JournalError, match=r"kubetune run STUDY\.yaml --local"):
        journals.live_view(tmp_path / "none.jsonl")
