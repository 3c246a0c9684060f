"""Model-fitting samplers in processes of their own: the same proposals as in the operator's
process, a lower CPU priority, a process that dies costs one call, not the operator; the other
samplers stay in the caller's thread."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal

import pytest
from kubetune import core
from kubetune.core import spec as specs
from kubetune.kube.sampling import NICE, SamplerError, SamplerProcesses

SPEC = {"objective": {"metric": "loss", "direction": "minimize"},
        "searchSpace": {"x": {"type": "float", "low": -1.0, "high": 1.0},
                        "opt": {"type": "categorical", "values": ["adam", "sgd"]}},
        "algorithm": {"name": "tpe", "seed": 4},
        "budget": {"maxTrials": 30, "parallelism": 2},
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "t", "image": "kubetune/trainer:0.1.0"}]}}}}}
GP = {**SPEC, "algorithm": {"name": "gp", "seed": 4}}
HISTORY = [{"params": {"x": i / 10 - 0.5, "opt": "adam" if i % 2 else "sgd"},
            "state": "Succeeded", "value": (i / 10 - 0.7) ** 2} for i in range(12)]


def same(ours: list[dict], theirs: list[dict]) -> bool:
    """The same proposals: equal choices, and numbers equal to 1e-9. The GP's fit differs in
    its last digits with the number of BLAS threads (one: 0.1999525657079586, two:
    0.19995256570662479), and the benchmark modules that tests/core imports set
    OPENBLAS_NUM_THREADS=1 in this process's environment, which a sampler process started
    after inherits while this one keeps its threads. A different sampler or history differs in
    every digit."""
    return len(ours) == len(theirs) and all(
        a.keys() == b.keys() and all(
            a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12) if isinstance(a[k], float)
            else a[k] == b[k] for k in a)
        for a, b in zip(ours, theirs, strict=True))


@pytest.fixture(scope="module")
def samplers():
    pool = SamplerProcesses(1)
    yield pool
    pool.close()


def test_proposals_are_the_operators_own_from_a_niced_process(samplers):
    (pid,) = samplers.warm_up()
    assert pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + NICE
    assert same(asyncio.run(samplers.suggest(GP, HISTORY, 2)), core.suggest(GP, HISTORY, 2))
    parsed = specs.parse_spec(GP)
    assert same(asyncio.run(samplers.suggest(parsed, HISTORY, 1)), core.suggest(GP, HISTORY, 1))


def test_only_samplers_that_fit_a_model_run_apart():
    assert SamplerProcesses.fits(GP) and SamplerProcesses.fits(specs.parse_spec(GP))
    assert not SamplerProcesses.fits(SPEC)  # tpe: milliseconds, in the reconcile's thread


def test_a_process_that_dies_fails_one_call_and_the_next_gets_a_new_one(samplers):
    (pid,) = samplers.warm_up()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SamplerError, match="reconciled again"):
        asyncio.run(samplers.suggest(GP, HISTORY, 1))
    (new,) = samplers.warm_up()
    assert new != pid
    assert same(asyncio.run(samplers.suggest(GP, HISTORY, 2)), core.suggest(GP, HISTORY, 2))


def test_a_spec_error_crosses_a_process_whole():
    error = specs.SpecError(["spec.a: first", "spec.b: second"])
    again = pickle.loads(pickle.dumps(error))
    assert again.problems == error.problems and str(again) == str(error)


def test_no_processes_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        SamplerProcesses(0)
