"""A study's trials read again only where the cluster changed: ``observe`` (the operator's own
reader) runs on the trials whose Job or pods have a new resourceVersion, and the others are
kept from the last read. A study of 10,000 trials then costs a viewer what its latest changes
cost, not 10,000 Jobs each time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kubetune._cli import views
from kubetune._cli.views import StudyView
from kubetune.core import spec as specs
from kubetune.core.trials import Trial
from kubetune.kube import observe as observing

__all__ = ["StudyReader"]

_Fingerprint = tuple[str, tuple[str, ...]]


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class StudyReader:
    """Keeps one study's trials between reads; not thread-safe (one reader per study, used
    under the caller's lock)."""

    def __init__(self) -> None:
        self._trials: dict[int, tuple[_Fingerprint, Trial]] = {}
        self._objective: tuple[str, bool] | None = None
        self.pods: dict[int, str] = {}  # trial number -> its current pod's name

    def view(self, study: dict[str, Any], jobs: Sequence[dict], pods: Sequence[dict],
             events: Sequence[dict]) -> StudyView:
        """The study's view now, as ``views.view_of`` would build it (pending reasons aside:
        the page shows the Ready condition's message instead)."""
        base = views.view_of(study, (), (), events)  # the spec, status and events
        if base.spec is None:
            return base
        spec = base.spec
        trials = self._read(jobs, pods, specs.watched(spec).metric, specs.minimize(spec),
                            int(base.status.get("nextTrial") or 0))
        return dataclasses.replace(base, trials=trials, pending_reasons=())

    def _read(self, jobs: Sequence[dict], pods: Sequence[dict], metric: str, minimize: bool,
              next_trial: int) -> tuple[Trial, ...]:
        if self._objective != (metric, minimize):
            self._trials.clear()
            self._objective = (metric, minimize)
        groups = {n: g for n, g in observing.group_by_trial(jobs, pods).items()
                  if g.job is not None}
        self.pods = {n: str(g.current_pod["metadata"]["name"]) for n, g in groups.items()
                     if g.current_pod is not None}
        prints = {n: (_version(g.job), tuple(_version(p) for p in g.pods))  # type: ignore[arg-type]
                  for n, g in groups.items()}
        changed = [n for n, fp in prints.items()
                   if n not in self._trials or self._trials[n][0] != fp]
        for n in [n for n in self._trials if n not in groups]:
            del self._trials[n]
        if changed:
            seen = observing.observe(
                [groups[n].job for n in changed],  # type: ignore[misc]
                [p for n in changed for p in groups[n].pods], observing.Reader(metric, minimize))
            wanted = set(changed)
            for t in seen.trials:
                if t.number in wanted:
                    self._trials[t.number] = (prints[t.number], t)
        trials = [t for _, t in self._trials.values()]
        # Numbers without a Job are Lost, as observe says of them.
        high = max([next_trial, *(n + 1 for n in groups)], default=0)
        if len(groups) < high:
            lost = observing.observe([], [], observing.Reader(metric, minimize),
                                     next_trial=high).trials
            trials += [t for t in lost if t.number not in groups]
        trials.sort(key=lambda t: t.number)
        return tuple(trials)
