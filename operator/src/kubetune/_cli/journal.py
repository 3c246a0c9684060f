"""The journal of a local run (``kubetune run --local``): JSON lines, appended and flushed as
things happen, so a run that is killed loses nothing it had written and the next run of the
same study file resumes from it.

Records, one per line:

- ``{"kind": "run", "name", "uid", "spec", "pid", "time"}``: a run started. The first one fixes
  the study's ``uid`` (the seed of a spec without one derives from it, as in the cluster); each
  later one carries the spec that run used (its budget may have grown).
- ``{"kind": "trial", "number", "params", "time"}``: a trial was started.
- ``{"kind": "result", "number", "result", "start", "end"}``: a trial ended; ``result`` is the
  ``kubetune.dev/result`` text the operator writes on a trial's Job.
- ``{"kind": "finished", "condition", "reason", "message", "time"}``: the study ended.

``parse_journal`` and ``journal_view`` are pure; ``Journal`` and ``read_journal`` do the I/O.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubetune._cli import views
from kubetune._cli.errors import CommandError
from kubetune.core import protocol
from kubetune.core import spec as specs
from kubetune.core.protocol import ProtocolError, TrialResult
from kubetune.core.trials import Trial, TrialState
from kubetune.kube.processes import pid_alive

__all__ = [
    "Journal",
    "JournalError",
    "JournalState",
    "Recorded",
    "journal_view",
    "live_view",
    "parse_journal",
    "read_journal",
]

# A resumed run must judge trials by the same objective over the same space.
_FIXED_FIELDS = ("objective", "objectives", "constraints", "searchSpace")


class JournalError(CommandError, ValueError):
    """A journal that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Recorded:
    """A trial's recorded end: its result and when it ran."""

    result: TrialResult
    start: float | None
    end: float | None


@dataclass
class JournalState:
    """What a journal holds: the study, its trials' params and their results."""

    name: str = ""
    uid: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    trials: dict[int, dict[str, Any]] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    results: dict[int, Recorded] = field(default_factory=dict)
    finished: dict[str, Any] | None = None

    @property
    def next_trial(self) -> int:
        return max(self.trials, default=-1) + 1

    @property
    def unfinished(self) -> list[int]:
        """Trials started and never ended: the run stopped under them."""
        return sorted(n for n in self.trials if n not in self.results)


def parse_journal(lines: Iterable[str], where: str = "journal") -> JournalState:
    """Replay journal lines. Pure. A last line cut short by a kill is ignored; any other bad
    line raises JournalError."""
    state = JournalState()
    lines = list(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break  # half-written when the run was killed
            raise JournalError(f"{where}, line {i + 1}: not JSON ({line[:80]!r}); the file is "
                               "damaged: delete it to start the study afresh") from None
        kind = rec.get("kind")
        if kind == "run":
            state.name = state.name or str(rec.get("name") or "")
            state.uid = state.uid or str(rec.get("uid") or "")
            state.spec = dict(rec.get("spec") or {})
            state.pid = rec.get("pid")
            state.finished = None
        elif kind == "trial":
            state.trials[int(rec["number"])] = dict(rec.get("params") or {})
            state.started[int(rec["number"])] = float(rec.get("time") or 0.0)
        elif kind == "result":
            try:
                result = protocol.parse_result(rec["result"])
            except (ProtocolError, KeyError) as e:
                raise JournalError(f"{where}, line {i + 1}: unreadable result ({e}); delete "
                                   "the file to start the study afresh") from None
            state.results[int(rec["number"])] = Recorded(result, rec.get("start"), rec.get("end"))
        elif kind == "finished":
            state.finished = {k: rec.get(k) for k in ("condition", "reason", "message", "time")}
    return state


def read_journal(path: Path) -> JournalState:
    """The state of the journal at ``path``; an empty state when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return JournalState()
    return parse_journal(text.splitlines(), str(path))


class Journal:
    """Appends records to a journal file, flushing each so a kill keeps all written before.

    One run at a time: the file is locked (flock) while it is open, and the lock goes with the
    process however it ends.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            owner = read_journal(path).pid
            raise JournalError(
                f"{path}: another run (pid {owner}) is using this journal; wait for it to end, "
                "or pass --journal with another file") from None

    @classmethod
    def open(cls, path: Path, name: str, spec: Mapping[str, Any]) -> tuple[Journal, JournalState]:
        """Open (or start) the journal of study ``name`` with ``spec``; a journal written for
        another study, objective or search space is refused."""
        journal = cls(path)  # the lock first: another run may be writing it
        state = read_journal(path)
        if state.uid:
            if state.name != name:
                journal.close()
                raise JournalError(
                    f"{path}: this journal belongs to study {state.name!r}, not {name!r}; pass "
                    "--journal with another file")
            for key in _FIXED_FIELDS:
                if _normal(state.spec.get(key)) != _normal(spec.get(key)):
                    journal.close()
                    raise JournalError(
                        f"{path}: spec.{key} differs from the one this journal was written "
                        f"with; a resumed study must keep its {key}. Delete the journal (or pass "
                        "--journal with another file) to start afresh")
        else:
            state.name, state.uid = name, str(uuid.uuid4())
        state.spec = dict(spec)
        journal.write({"kind": "run", "name": name, "uid": state.uid, "spec": dict(spec),
                       "pid": os.getpid(), "time": time.time()})
        state.finished = None
        return journal, state

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def trial(self, number: int, params: Mapping[str, Any], when: float) -> None:
        self.write({"kind": "trial", "number": number, "params": dict(params), "time": when})

    def result(self, number: int, result: TrialResult, start: float | None,
               end: float | None) -> None:
        self.write({"kind": "result", "number": number, "result": protocol.encode_result(result),
                    "start": start, "end": end})

    def finished(self, condition: str, reason: str, message: str) -> None:
        self.write({"kind": "finished", "condition": condition, "reason": reason,
                    "message": message, "time": time.time()})

    def close(self) -> None:
        self._file.close()


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def journal_view(state: JournalState, *, live: bool, path: str = "") -> views.StudyView:
    """A study as its journal tells it. Pure. ``live``: whether the run that wrote it is still
    going; if not, trials it left unfinished are shown Stopped (reason Interrupted)."""
    try:
        spec: specs.StudySpec | None = specs.parse_spec(state.spec)
        problem = None
    except specs.SpecError as e:
        spec, problem = None, str(e)
    trials = []
    for n, params in sorted(state.trials.items()):
        rec = state.results.get(n)
        if rec is not None:
            r = rec.result
            trials.append(Trial(n, params, r.state, r.value, tuple(r.curve), r.reason, r.message,
                                rec.start, rec.end, values=dict(r.values)))
        elif live:
            trials.append(Trial(n, params, TrialState.RUNNING, start_time=state.started.get(n)))
        else:
            trials.append(Trial(n, params, TrialState.STOPPED, reason="Interrupted",
                                message="the local run stopped first; running it again "
                                        "starts this trial again",
                                start_time=state.started.get(n)))
    done = state.finished
    if done:
        reason, message = str(done.get("reason")), str(done.get("message") or "")
        conditions = [{"type": "Ready", "status": "True" if done["condition"] == "Succeeded"
                       else "False", "reason": reason, "message": message},
                      {"type": str(done["condition"]), "status": "True", "reason": reason,
                       "message": message}]
    else:
        reason = "Running" if live else "Interrupted"
        message = f"local run, journal {path}" if live else \
            f"the local run stopped; run `kubetune run --local` again to resume ({path})"
        conditions = [{"type": "Ready", "status": "True", "reason": reason, "message": message}]
    events = []
    for n in sorted(state.results):
        rec = state.results[n]
        r = rec.result
        text = f"trial {n}: {r.state.value}" + (
            f", value {r.value:.6g}" if r.value is not None else "") + (
            f" ({r.reason})" if r.reason else "")
        events.append(views.Event(rec.end, f"Trial{r.state.value}", text))
    events.sort(key=lambda e: e.time or 0.0)
    return views.StudyView(
        name=state.name, namespace=None, spec=spec, status={"conditions": conditions},
        trials=tuple(trials), events=tuple(events),
        created=min(state.started.values(), default=None), problem=problem,
    )


def live_view(path: Path) -> views.StudyView:
    """The view of the journal at ``path`` now, live when the run that wrote it still runs."""
    state = read_journal(path)
    if not state.uid:
        raise JournalError(f"{path}: no such journal; `kubetune run STUDY.yaml --local` writes "
                           "one")
    live = state.finished is None and pid_alive(state.pid)
    return journal_view(state, live=live, path=str(path))
