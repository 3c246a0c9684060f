"""The trainer as two workers of one trial (trial.workers: 2): torch.distributed over gloo on
loopback, each worker on its share of the batches, worker 0 reporting."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from kubetune_trainer.distributed import Group  # noqa: E402 - after torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(rank: int, port: int, size: int = 2) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POD_NAME", "KUBECONFIG", "KUBETUNE_TRIAL")}
    env.update(KUBETUNE_PARAMS=json.dumps({"epochs": 2, "threads": 1, "width": 32, "seed": 5}),
               WORLD_SIZE=str(size), RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    return env


def test_two_workers_train_one_model_and_worker_0_reports() -> None:
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "kubetune_trainer"],
                              env=worker_env(rank, port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    (out0, err0), (out1, err1) = outs
    reports = [json.loads(line) for line in out0.splitlines()]
    assert [(r["step"], r["final"]) for r in reports] == [(1, False), (2, False), (2, True)]
    assert out1 == ""  # worker 1 trains but reports nothing
    assert "worker 0 of 2 (gloo)" in err0 and "worker 1 of 2 (gloo)" in err1
    # Both workers hold the same model: they measure the same validation loss every epoch.
    losses = [re.findall(r"val_loss=([0-9.]+)", err) for err in (err0, err1)]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    assert reports[-1]["metrics"]["val_loss"] == pytest.approx(float(losses[0][-1]), abs=1e-4)
    # Learnt something: better than chance on ten classes.
    assert reports[-1]["metrics"]["val_accuracy"] > 0.5


def test_one_worker_is_no_group() -> None:
    assert Group.from_env({}) is None
    assert Group.from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None


@pytest.mark.parametrize(("env", "says"), [
    ({"WORLD_SIZE": "two", "RANK": "0"}, "whole numbers"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"},
     "RANK=2 is not a worker"),
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
])
def test_a_bad_group_is_refused_with_what_to_fix(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Group.from_env(env)


def test_the_group_is_read_from_the_environment() -> None:
    assert Group.from_env({"WORLD_SIZE": "4", "RANK": "3", "MASTER_ADDR": "h",
                           "MASTER_PORT": "29500"}) == Group(3, 4)
    assert Group(0, 2).leader and not Group(1, 2).leader
