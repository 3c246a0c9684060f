"""Standby replicas: two operators share a coordination.k8s.io Lease; one leads, the other
waits, and takes over when the leader is killed (within what the Lease settings promise, and
not before the Lease could have expired), with no trial created twice."""

from __future__ import annotations

import time

from conftest import Cluster, OperatorProcess, wait_for
from kubetune.core import times
from kubetune.kube import conventions as names
from kubetune.kube import leader
from studies import study
from test_operator import trial_jobs, wait_condition


def lease(cluster: Cluster, namespace: str) -> dict:
    return cluster.get("lease", "-n", namespace, "kubetune-operator")


def lease_holder(cluster: Cluster, namespace: str) -> str | None:
    proc = cluster.kubectl("get", "lease", "-n", namespace, "kubetune-operator", "-o",
                           "jsonpath={.spec.holderIdentity}", check=False)
    return proc.stdout or None if proc.returncode == 0 else None


def test_standby_takes_over_when_the_leader_dies(cluster: Cluster, operator: OperatorProcess,
                                                 namespace):
    operator.stop()  # the session's operator would reconcile too
    args = ("--leader-elect", "--lease-namespace", namespace)
    replicas = [OperatorProcess(cluster, cluster.state.log_dir / f"leader-{namespace}-{i}.log",
                                args) for i in range(2)]
    try:
        replicas[0].start()
        first = wait_for(lambda: lease_holder(cluster, namespace), what="a leader")
        replicas[1].start()
        manifest = study("ha", toy=["quadratic", "--steps", "2", "--sleep", "0.5"],
                         budget={"maxTrials": 16, "parallelism": 4, "maxFailedTrials": 1})
        cluster.apply(manifest, namespace)
        wait_for(lambda: len(trial_jobs(cluster, namespace, "ha")) >= 4, what="trials")
        time.sleep(2)
        assert "standing by" in replicas[1].log_tail(200)
        replicas[0].kill()
        killed = time.monotonic()
        last_renewal = times.parse_rfc3339(lease(cluster, namespace)["spec"]["renewTime"])
        bound = leader.takeover_bound(leader.LEASE_SECONDS, leader.RENEW_SECONDS)
        second = wait_for(lambda: (lambda h: h if h and h != first else None)(
            lease_holder(cluster, namespace)), timeout=bound + 30,
            what="the standby to take the lease")
        print(f"standby took over {time.monotonic() - killed:.1f} s after the leader was killed")
        assert second != first
        # Both times are written into the Lease by the replicas (one clock, this machine's):
        # the standby acquired it only once it had expired, and within one retry after that.
        acquired = times.parse_rfc3339(lease(cluster, namespace)["spec"]["acquireTime"])
        waited = acquired - last_renewal
        print(f"acquired {waited:.2f} s after the dead leader's last renewal "
              f"(the Lease promises more than {leader.LEASE_SECONDS} s, at most {bound:.0f} s)")
        # One retry's own GET and PUT may land after the bound: a second, on a loaded machine.
        assert leader.LEASE_SECONDS < waited <= bound + 1.0
        obj = wait_condition(cluster, namespace, "ha", "Succeeded", timeout=240)
        numbers = [int(j["metadata"]["labels"][names.TRIAL_LABEL])
                   for j in trial_jobs(cluster, namespace, "ha")]
        assert sorted(numbers) == list(range(16))
        assert obj["status"]["trials"]["succeeded"] == 16
    finally:
        for r in replicas:
            r.kill()
        operator.ensure_running()
