"""The samplers that fit a model (``samplers.MODEL_FITTING``: the GP ones), run in processes of
their own at a lower CPU priority; the others take milliseconds and run in the reconcile's
thread (``kube.reconcile``), so that they never wait behind a fit.

A sampler is pure Python and numpy (``kubetune.core.suggest``), and a Gaussian-process fit
takes seconds at 100 trials. Run in one of the operator's threads it holds the GIL for most of
that time, so the event loop that serves every other study (watch events, results, Job
creation) runs at a fraction of its speed whenever a GP study asks for a trial. In a process it
holds only its own GIL; niced, it also yields the CPU to the operator and to the control plane
on a busy node. The reconcile awaits the answer on the event loop, holding no thread meanwhile.

The processes hold nothing between calls (a call carries the spec and the history), so one
that dies (killed for memory, say) costs the reconcile that used it: ``suggest`` raises
``SamplerError``, the work queue retries that study with backoff, and new processes are
started for the next call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from kubetune import core
from kubetune.core import samplers
from kubetune.core.trials import Trial

__all__ = ["NICE", "SamplerError", "SamplerProcesses"]

log = logging.getLogger("kubetune.sampling")

NICE = 10  # added to the processes' niceness: the loop and the API server come first


class SamplerError(RuntimeError):
    """The sampler's process ended while it worked on a call."""


def _start(nice: int) -> None:
    with contextlib.suppress(OSError):  # a sandbox that refuses it: same priority, still apart
        os.nice(nice)
    import kubetune.core.samplers.gp  # noqa: F401  (loaded once per process, before a call)


def _algorithm(spec: Any) -> str | None:
    """The sampler a spec names (a ``StudySpec`` or the manifest's mapping)."""
    if isinstance(spec, Mapping):
        algorithm = spec.get("algorithm")
        return str(algorithm.get("name")) if isinstance(algorithm, Mapping) else None
    algorithm = getattr(spec, "algorithm", None)
    return getattr(algorithm, "name", None)


def _ready() -> int:
    return os.getpid()


class SamplerProcesses:
    """``processes`` sampler processes; ``suggest`` is ``kubetune.core.suggest``, awaited."""

    def __init__(self, processes: int = 1, nice: int = NICE):
        if processes < 1:
            raise ValueError(f"processes={processes}: give at least 1")
        self.processes = processes
        self.nice = nice
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn: the operator has threads, which a fork would copy mid-flight.
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(self.nice,))

    def warm_up(self) -> set[int]:
        """Start the processes now, so the first study does not wait for their imports; the
        ids of the processes that answered."""
        with self._lock:
            pool = self._pool
        return {future.result() for future in [pool.submit(_ready)
                                                for _ in range(self.processes)]}

    @staticmethod
    def fits(spec: Any) -> bool:
        """Whether the study's sampler fits a model, and so runs in these processes."""
        return _algorithm(spec) in samplers.MODEL_FITTING

    async def suggest(self, spec: Any, trials: Sequence[Trial | Mapping[str, Any]], n: int
                      ) -> list[dict[str, Any]]:
        """``kubetune.core.suggest`` in one of the processes, awaited without a thread."""
        with self._lock:
            pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(core.suggest, spec, list(trials), n))
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    log.warning("a sampler process ended while it worked (killed for memory, or "
                                "a crash); starting new ones, and the study is retried")
                    self._pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)
            raise SamplerError("the sampler's process ended before it answered; the study "
                               "is reconciled again") from None

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
