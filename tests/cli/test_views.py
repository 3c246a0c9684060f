"""_cli.views: the columns `kubetune get` prints are the ones `kubectl get ts` prints."""

from __future__ import annotations

from kubetune._cli import views
from kubetune.kube.crd import PRINTER_COLUMNS

STUDY = {
    "metadata": {"name": "s"},
    "spec": {"budget": {"maxTrials": 20}},
    "status": {
        "phase": "Running", "progress": "7/20", "bestValue": "0.105965",
        "trials": {"running": 2, "succeeded": 5, "failed": 1, "pruned": 1, "pending": 3,
                   "total": 12},
        "bestTrial": {"number": 3, "value": 0.10596491228070176},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Running"}],
    },
}


def _kubectl(study: dict, column: str) -> str:
    """What kubectl prints for a simple ``.a.b.c`` printer column."""
    path = next(c["jsonPath"] for c in PRINTER_COLUMNS if c["name"] == column)
    node = study
    for part in path.strip(".").split("."):
        node = node[part]
    return str(node)


def test_columns_are_kubectls() -> None:
    assert views.list_columns(STUDY) == tuple(
        _kubectl(STUDY, c) for c in ("Status", "Trials", "Running", "Best"))


def test_a_status_without_the_column_fields_counts_the_same() -> None:
    # An operator from before status.phase/progress/bestValue: same words, from the counts.
    old = {**STUDY, "status": {k: v for k, v in STUDY["status"].items()
                               if k not in ("phase", "progress", "bestValue")}}
    assert views.list_columns(old) == ("Running", "7/20", "2", "0.105965")


def test_no_status_yet() -> None:
    assert views.list_columns({"metadata": {"name": "s"}, "spec": {}}) == ("Pending", "0", "0",
                                                                           "-")


def test_front_is_kubectls_front_column():
    several = {**STUDY, "spec": {"objectives": [{"metric": "a", "direction": "maximize"},
                                                {"metric": "b", "direction": "minimize"}]},
               "status": {**STUDY["status"], "frontSize": 7, "bestValue": None}}
    assert views.several_objectives(several) and not views.several_objectives(STUDY)
    assert views.front_column(several) == _kubectl(several, "Front") == "7"
    assert views.front_column(STUDY) == "-"  # one objective: kubectl leaves it empty
