"""benchmarks/bench_scale.py's accounting: which Job follows which, the sampler's time taken
out, the audit log read across the apiserver's rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    return bench_scale


def test_a_completion_is_paired_with_its_studys_next_job_less_the_sampler(bench):
    clock = SimpleNamespace(
        created={"a-x1-0": 0.0, "a-x1-1": 0.0, "a-x1-2": 10.2, "b-y2-0": 0.0, "b-y2-1": 0.0,
                 "b-y2-2": 10.05},
        completed={"a-x1-0": 10.0, "b-y2-0": 10.0, "a-x1-1": 20.0})  # a-x1-1: none after it
    turnaround = bench.Turnaround(total=0.18, begin=0.01, look=0.16, create=0.01)
    sampled = {"a-x1-2": ("gp", 0.15, turnaround), "b-y2-2": ("random", 0.001, None)}
    out = bench.overheads(clock, sampled, 2)
    assert set(out) == {"gp", "random"}
    ((total, without, own),) = out["gp"]
    assert (total, without) == pytest.approx((0.2, 0.05))
    # The sampler's 0.15 s is taken out of the operator's part and of its look alone.
    assert tuple(own) == pytest.approx((0.03, 0.01, 0.01, 0.01))
    ((total, without, own),) = out["random"]
    assert (total, without) == pytest.approx((0.05, 0.049)) and own is None


def test_a_successor_made_before_the_job_controller_marked_the_end_is_its_own(bench):
    """Trial 3 replaced trial 0 before the Job controller marked trial 0's end; the first Job
    created after that mark is trial 4, trial 1's successor, and must not count as trial 0's."""
    from bench_operator import successors

    created = {"s-u-0": 0.0, "s-u-1": 0.0, "s-u-2": 0.0, "s-u-3": 9.9, "s-u-4": 10.6,
               "s-u-5": 11.0}
    completed = {"s-u-0": 10.0, "s-u-1": 10.5, "s-u-2": 10.9}
    assert successors(created, completed, 3) == [
        ("s-u-0", "s-u-3", pytest.approx(-0.1)), ("s-u-1", "s-u-4", pytest.approx(0.1)),
        ("s-u-2", "s-u-5", pytest.approx(0.1))]


def test_the_audit_log_is_read_across_a_rotation_from_where_the_run_began(bench, tmp_path):
    def line(n: int, agent: str, verb: str = "patch") -> bytes:
        return json.dumps({"auditID": f"id-{n}", "userAgent": agent, "verb": verb,
                           "objectRef": {"resource": "jobs"}}).encode() + b"\n"

    live = tmp_path / "audit.log"
    live.write_bytes(line(0, "kopf/1.0"))  # before the run
    start = (live.stat().st_ino, live.stat().st_size, 0.0)
    with live.open("ab") as f:
        f.write(line(1, "kopf/1.0") + line(2, "kubectl/v1.37") + line(3, "Python aiohttp/3"))
    live.rename(tmp_path / "audit-2026-12-06T23-00-00.000.log")  # rotated by the apiserver
    live.write_bytes(line(4, "Python aiohttp/3", "get"))
    old = tmp_path / "audit-2020-01-01T00-00-00.000.log"  # from an earlier run
    old.write_bytes(line(5, "kopf/1.0"))
    os.utime(old, (0, 0))
    start = (start[0], start[1], 1.0)
    counts = bench.operator_requests(live, start)
    assert (counts["write"], counts["read"]) == (2, 1)
    assert counts["patch jobs"] == 2


def test_the_api_servers_own_time_is_read_for_the_operators_job_creates_alone(bench,
                                                                             tmp_path):
    def line(n: int, agent: str, verb: str, resource: str, took_ms: int,
             stage: str = "ResponseComplete") -> bytes:
        return json.dumps({
            "auditID": f"id-{n}", "stage": stage, "userAgent": agent, "verb": verb,
            "objectRef": {"resource": resource},
            "requestReceivedTimestamp": "2026-12-07T23:00:00.000000Z",
            "stageTimestamp": f"2026-12-07T23:00:00.{took_ms * 1000:06d}Z"}).encode() + b"\n"

    live = tmp_path / "audit.log"
    live.write_bytes(line(0, "Python aiohttp/3", "create", "jobs", 900))  # before the run
    start = (live.stat().st_ino, live.stat().st_size, 0.0)
    with live.open("ab") as f:
        f.write(line(1, "Python aiohttp/3", "create", "jobs", 120, stage="ResponseStarted")
                + line(1, "Python aiohttp/3", "create", "jobs", 125)
                + line(2, "kube-controller-manager/v1.37", "create", "jobs", 300)
                + line(3, "Python aiohttp/3", "patch", "jobs", 40)
                + line(4, "Python aiohttp/3", "create", "jobs", 60))
    assert bench.creates_server_side(live, start) == pytest.approx([0.125, 0.060])
