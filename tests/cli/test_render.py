"""Views and terminal rendering: leaderboard order, tables, progress and the watch frame."""

from __future__ import annotations

from cli_cases import mixed_trials, study_view, trial
from kubetune._cli import render, views
from kubetune._cli.views import Event


def test_ranked_rows_rank_succeeded_by_value_ties_to_the_older_trial():
    rows = views.ranked_rows(mixed_trials(), minimize=True)
    ranked = [(r.rank, r.trial.number) for r in rows if r.rank is not None]
    assert ranked == [(1, 1), (2, 5), (3, 0), (4, 4), (5, 6)]
    rest = [r.trial.number for r in rows if r.rank is None]
    # Running (by value, then without one), Pruned, Pending, Failed.
    assert rest == [7, 8, 2, 9, 3]


def test_ranked_rows_maximize_reverses_the_order():
    trials = [trial(0, "Succeeded", 1.0), trial(1, "Succeeded", 3.0), trial(2, "Succeeded", 2.0)]
    assert [r.trial.number for r in views.ranked_rows(trials, minimize=False)] == [1, 2, 0]


def test_best_so_far_steps_only_on_improvement():
    best = views.best_so_far(mixed_trials(), minimize=True)
    assert best == [(0, 0.5), (1, 0.2), (4, 0.2), (5, 0.2), (6, 0.2)]


def test_format_helpers():
    assert views.format_duration(0.42) == "0.4s"
    assert views.format_duration(42) == "42s"
    assert views.format_duration(185) == "3m05s"
    assert views.format_duration(7800) == "2h10m"
    assert views.format_duration(None) == "-"
    assert views.format_value(0.123456789) == "0.123457"
    assert views.format_value(True) == "true"
    assert views.format_params({"x": 0.123456, "opt": "sgd", "n": 3}) == "x=0.1235 opt=sgd n=3"


def test_leaderboard_table_columns_and_order():
    text = render.leaderboard_table(study_view(mixed_trials()), now=1060.0)
    lines = text.splitlines()
    assert lines[0].split() == ["RANK", "TRIAL", "LOSS", "STATE", "x", "lr", "opt", "DURATION"]
    assert lines[1].split() == ["1", "1", "0.2", "Succeeded", "0.3", "0.01", "sgd", "10s"]
    assert lines[2].split()[:2] == ["2", "5"]
    pruned = next(line for line in lines if line.split()[1] == "2")
    assert "Pruned (EarlyStopped)" in pruned
    running = next(line for line in lines if line.split()[1] == "7")
    assert running.split()[-1] == "10s"  # still running: measured to now
    pending = next(line for line in lines if line.split()[1] == "9")
    assert pending.split()[-1] == "-"
    assert len(lines) == 11


def test_leaderboard_table_limit_says_what_is_left_out():
    text = render.leaderboard_table(study_view(mixed_trials()), now=1060.0, limit=3)
    assert text.splitlines()[-1] == "... and 7 more trials (--limit 0 shows all)"
    assert len(text.splitlines()) == 5


def test_studies_table_from_status_alone():
    studies = [{
        "metadata": {"name": "a", "namespace": "ns1", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"budget": {"maxTrials": 30}},
        "status": {"trials": {"succeeded": 7, "failed": 1, "pruned": 2, "running": 4},
                   "bestTrial": {"value": 0.0123},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Running"}]},
    }, {"metadata": {"name": "fresh", "namespace": "ns2"}, "spec": {}}]
    now = 1735689600.0 + 125
    text = render.studies_table(studies, now, namespaces=True)
    lines = text.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "AGE"]
    assert lines[1].split() == ["ns1", "a", "Running", "10/30", "4", "0.0123", "2m05s"]
    assert lines[2].split() == ["ns2", "fresh", "Pending", "0", "0", "-", "-"]
    assert render.studies_table([], now) == "No studies found."


def test_progress_bar():
    assert render.progress_bar(5, 10, width=10) == "[#####.....] 5/10 (50%)"
    assert render.progress_bar(12, 10, width=4) == "[####] 12/10 (100%)"
    assert render.progress_bar(3, None) == "3 trials done"


def test_watch_frame_shows_counts_progress_best_and_latest_events():
    events = tuple(Event(1000.0 + i, "TrialCreated", f"trial {i}") for i in range(8))
    view = study_view(mixed_trials(), events=events)
    frame = render.watch_frame(view, now=1060.0, width=120, events=3)
    assert "Study demo (namespace team-a): Running" in frame
    assert "7/12 (58%)" in frame  # Succeeded, Failed and Pruned spend the budget
    assert "done 7 (succeeded 5, failed 1, pruned 1)   running 2   pending 1" in frame
    assert "best loss 0.2 (trial 1: x=0.3 lr=0.01 opt=sgd)" in frame
    assert "trial 7" in frame and "trial 4" not in frame.split("Latest events:")[1]
    assert frame.count("TrialCreated") == 3
    assert all(len(line) <= 120 for line in frame.splitlines())
