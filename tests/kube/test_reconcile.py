"""One reconcile against the fake API: what it creates, records, ends, releases and writes,
and what it does when the cluster moved on meanwhile (answers as the real server gives)."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from fakeapi import FakeApi
from kubetune import core
from kubetune.core import protocol
from kubetune.core import spec as specs
from kubetune.core import warm_start as warm
from kubetune.core.trials import Trial, TrialState
from kubetune.kube import api as paths
from kubetune.kube import conventions as names
from kubetune.kube import errors, signing
from kubetune.kube import jobs as builders
from kubetune.kube.rbac import TrialAccess
from kubetune.kube.reconcile import Reconciler
from studycluster import KEY, NS, SPEC, UID, Store, add_study, finish, jobs, run_pod, study_of

NOW = 1_800_000_000.0


def reconciler(fake: FakeApi, clock: list[float] | None = None) -> Reconciler:
    clock = clock if clock is not None else [NOW]
    return Reconciler(fake, Store(fake), key=KEY, clock=lambda: clock[0],
                      access=TrialAccess(fake, clock=lambda: clock[0]))


def reconcile(r: Reconciler, fake: FakeApi):
    return asyncio.run(r.reconcile(copy.deepcopy(study_of(fake))))


def started(clock: list[float] | None = None) -> tuple[FakeApi, Reconciler]:
    """A study after its first reconcile: trials 0 and 1 created."""
    fake = FakeApi()
    add_study(fake)
    r = reconciler(fake, clock)
    reconcile(r, fake)
    return fake, r


def condition(fake: FakeApi, kind: str) -> dict:
    (c,) = [c for c in study_of(fake)["status"]["conditions"] if c["type"] == kind]
    return c


def test_the_first_reconcile_creates_the_trials_their_rbac_and_the_status() -> None:
    fake = FakeApi()
    add_study(fake)
    outcome = reconcile(reconciler(fake), fake)
    assert sorted(jobs(fake)) == [0, 1]  # parallelism 2 of maxTrials 3
    for path in (f"/api/v1/namespaces/{NS}/serviceaccounts/{names.TRIAL_SERVICE_ACCOUNT}",
                 f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/"
                 f"{names.TRIAL_ROLE}",
                 f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings/"
                 f"{names.TRIAL_ROLE}"):
        assert path in fake.objects
    status = study_of(fake)["status"]
    assert status["nextTrial"] == 2 and status["observedGeneration"] == 1
    assert condition(fake, "Ready")["status"] == "True"
    assert condition(fake, "Reconciling")["status"] == "False"
    reasons = [e["reason"] for e in fake.under(paths.events_path(NS))]
    assert reasons == []  # trials that simply start are on their Jobs, not in Events
    assert outcome.plan is not None and len(outcome.plan.create) == 2
    assert outcome.requeue_after is None  # no trialTimeoutSeconds: nothing to look at early


def test_a_reconcile_with_nothing_new_writes_nothing() -> None:
    fake, r = started()
    writes, calls = fake.writes, len(fake.calls)
    reconcile(r, fake)
    assert fake.writes == writes
    assert fake.calls[calls:] == []


def test_a_finished_trial_is_recorded_signed_released_and_replaced() -> None:
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    reconcile(r, fake)
    job = jobs(fake)[0]
    text = job["metadata"]["annotations"][names.RESULT_ANNOTATION]
    result = protocol.parse_result(text)
    assert result.state is TrialState.SUCCEEDED and result.value == 0.25
    assert signing.verify(KEY, job, text,
                          job["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION])
    pod = fake.objects[paths.pod_path(NS, job["metadata"]["name"] + "-p")]
    assert names.FINALIZER not in pod["metadata"]["finalizers"]
    assert sorted(jobs(fake)) == [0, 1, 2]
    status = study_of(fake)["status"]
    assert status["trials"]["succeeded"] == 1 and status["bestTrial"]["value"] == 0.25


def test_the_next_trial_is_created_before_the_finished_one_is_recorded() -> None:
    """One API call between a trial's end and its successor: the result patch and the pod's
    release follow the create."""
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    calls = len(fake.calls)
    reconcile(r, fake)
    writes = [(m, p) for m, p in fake.calls[calls:] if m != "GET"]
    name = jobs(fake)[0]["metadata"]["name"]
    assert writes[0] == ("POST", paths.jobs_path(NS))
    assert writes[1] == ("PATCH", f"{paths.jobs_path(NS)}/{name}")
    assert writes[2] == ("PATCH", paths.pod_path(NS, name + "-p"))


def test_a_refused_create_still_records_and_releases_what_finished() -> None:
    """A quota that refuses the next trial must not keep the finished one's pod waiting."""
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    refusal = errors.Forbidden(403, 'jobs "t-3" is forbidden: exceeded quota: jobs, '
                                    "requested: count/jobs.batch=1, used=2, limited=2")
    fake.fail("POST", paths.jobs_path(NS), refusal)
    with pytest.raises(errors.Forbidden):
        reconcile(r, fake)
    job = jobs(fake)[0]
    assert protocol.parse_result(job["metadata"]["annotations"][
        names.RESULT_ANNOTATION]).value == 0.25
    pod = fake.objects[paths.pod_path(NS, job["metadata"]["name"] + "-p")]
    assert names.FINALIZER not in pod["metadata"]["finalizers"]
    assert sorted(jobs(fake)) == [0, 1]


def test_a_recorded_result_is_never_written_again() -> None:
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    reconcile(r, fake)
    recorded = jobs(fake)[0]["metadata"]["resourceVersion"]
    reconcile(r, fake)
    assert jobs(fake)[0]["metadata"]["resourceVersion"] == recorded


def test_a_deleted_role_is_created_again_within_the_recheck_period() -> None:
    clock = [NOW]
    fake, r = started(clock)
    role = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/{names.TRIAL_ROLE}"
    fake.delete(role)
    reconcile(r, fake)
    assert role not in fake.objects  # checked a moment ago: not yet
    clock[0] += r.access.recheck + 1  # type: ignore[union-attr]
    reconcile(r, fake)  # trials still run: their reports need the Role
    assert role in fake.objects


def test_reconciles_of_one_namespace_at_once_check_trial_rbac_once() -> None:
    class Slow(FakeApi):  # a create takes a round trip, as over the network
        async def create(self, path: str, body, *, dry_run: bool = False):
            await asyncio.sleep(0.01)
            return await super().create(path, body, dry_run=dry_run)

    fake = Slow()
    access = TrialAccess(fake, clock=lambda: NOW)

    async def many() -> None:
        await asyncio.gather(*(access.ensure(NS, None) for _ in range(20)))

    asyncio.run(many())
    posts = [path for method, path in fake.calls if method == "POST"]
    assert len(posts) == 3, posts  # the ServiceAccount, the Role, the RoleBinding: once


def test_a_template_the_api_server_refuses_stalls_the_study_and_creates_nothing() -> None:
    fake = FakeApi()
    add_study(fake)
    fake.refuse[paths.jobs_path(NS)] = "dry run of an invalid job"
    reconcile(reconciler(fake), fake)
    assert jobs(fake) == {}
    stalled = condition(fake, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "spec.jobTemplate: the API server refuses the trial Job" in stalled["message"]
    assert "restartPolicy" in stalled["message"]


@pytest.mark.parametrize("gone", ["terminating", "missing_namespaces"])
def test_a_study_whose_namespace_is_going_starts_nothing_and_does_not_fail(gone) -> None:
    fake = FakeApi()
    add_study(fake)
    getattr(fake, gone).add(NS)
    r = reconciler(fake)
    r.access = None  # the namespace refuses RBAC objects as well; the Job path is what counts
    outcome = reconcile(r, fake)
    assert jobs(fake) == {}
    assert outcome.plan is not None


def test_a_name_already_taken_is_a_trial_that_exists() -> None:
    fake, r = started()
    job = copy.deepcopy(jobs(fake)[0])
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        del job["metadata"][key]
    events = len(fake.under(paths.events_path(NS)))
    # Another replica (or an earlier, interrupted reconcile) created it: no error, no event.
    assert asyncio.run(r.apply.create(study_of(fake), 0, job)) is False
    assert len(fake.under(paths.events_path(NS))) == events


def test_a_job_deleted_before_its_result_is_recorded_is_not_an_error() -> None:
    fake, r = started()
    finish(fake, 0, loss=0.5, now=NOW + 10)
    name = jobs(fake)[0]["metadata"]["name"]
    fake.fail("PATCH", paths.job_path(NS, name),
              _recorded_error("patch missing job", paths.job_path(NS, name)))
    reconcile(r, fake)
    assert names.RESULT_ANNOTATION not in jobs(fake)[0]["metadata"].get("annotations", {})


def test_a_server_error_propagates_for_the_work_queue_to_retry() -> None:
    fake = FakeApi()
    add_study(fake)
    fake.fail("POST", paths.jobs_path(NS), errors.ServerError(500, "etcd leader changed"))
    with pytest.raises(errors.ServerError):
        reconcile(reconciler(fake), fake)


def test_stopping_a_trial_records_its_result_then_ends_its_pod() -> None:
    fake = FakeApi()
    add_study(fake, spec={**SPEC, "objective": {**SPEC["objective"], "goal": 0.1}})
    clock = [NOW]
    r = reconciler(fake, clock)
    reconcile(r, fake)
    run_pod(fake, jobs(fake)[1], NOW)  # trial 1 runs
    clock[0] = NOW + 20
    finish(fake, 0, loss=0.05, now=NOW + 20)  # trial 0 meets the goal: the study ends
    reconcile(r, fake)
    job = jobs(fake)[1]
    result = protocol.parse_result(job["metadata"]["annotations"][names.RESULT_ANNOTATION])
    assert result.state is TrialState.STOPPED
    # In the same write: the pod it ends is not re-run as one its node lost (maxRetries).
    assert job["spec"]["backoffLimit"] == 0
    assert jobs(fake)[0]["spec"]["backoffLimit"] == 3  # a trial that ended on its own
    pod = fake.objects[paths.pod_path(NS, job["metadata"]["name"] + "-p")]
    assert pod["spec"]["activeDeadlineSeconds"] == 20  # what it ran: it ends now
    assert condition(fake, "Succeeded")["reason"] == "GoalReached"
    order = [(m, p) for m, p in fake.calls if p.startswith(paths.job_path(NS, ""))
             or p.startswith(paths.pod_path(NS, ""))]
    assert order.index(("PATCH", paths.job_path(NS, job["metadata"]["name"]))) < \
        order.index(("PATCH", paths.pod_path(NS, job["metadata"]["name"] + "-p")))


def test_a_running_trial_with_a_timeout_is_looked_at_when_it_is_due() -> None:
    fake = FakeApi()
    spec = copy.deepcopy(SPEC)
    spec["budget"]["trialTimeoutSeconds"] = 300
    add_study(fake, spec=spec)
    r = reconciler(fake)
    reconcile(r, fake)
    run_pod(fake, jobs(fake)[0], NOW - 100)
    outcome = reconcile(r, fake)
    assert outcome.requeue_after == pytest.approx(200 + 1)


def test_a_study_deleted_meanwhile_has_no_status_written_and_no_error() -> None:
    fake = FakeApi()
    add_study(fake)
    r = reconciler(fake)
    study = copy.deepcopy(study_of(fake))
    fake.delete(paths.study_path(NS, "demo"))
    asyncio.run(r.reconcile(study))
    assert r.status.writes == 0


def _recorded_error(name: str, path: str) -> errors.ApiError:
    from fakeapi import error_like

    return error_like(name, path, path.rsplit("/", 1)[-1], "PATCH")


def test_the_store_is_told_of_every_write() -> None:
    fake = FakeApi()
    add_study(fake)
    store = Store(fake)
    r = Reconciler(fake, store, key=KEY, clock=lambda: NOW)
    asyncio.run(r.reconcile(copy.deepcopy(study_of(fake))))
    assert store.wrote_kinds == ["jobs", "jobs"]
    assert UID in {j["metadata"]["labels"][names.STUDY_UID_LABEL] for j in jobs(fake).values()}


def two_running(clock: list[float]) -> tuple[FakeApi, Reconciler]:
    """A study of 10 trials at parallelism 2 whose first two run, its status written."""
    fake = FakeApi()
    add_study(fake, spec={**SPEC, "budget": {**SPEC["budget"], "maxTrials": 10}})
    r = reconciler(fake, clock)
    reconcile(r, fake)
    for n in (0, 1):
        run_pod(fake, jobs(fake)[n], NOW)
    reconcile(r, fake)
    return fake, r


def test_progress_waits_an_interval_for_more_and_is_never_lost() -> None:
    clock = [NOW]
    fake, r = started(clock)
    interval = r.status.interval
    run_pod(fake, jobs(fake)[0], NOW)  # trial 0 runs: the phase is Running, written at once
    reconcile(r, fake)
    assert study_of(fake)["status"]["phase"] == "Running"
    writes = fake.writes
    run_pod(fake, jobs(fake)[1], NOW)  # trial 1 runs too: only counts move
    clock[0] = NOW + 0.25
    outcome = reconcile(r, fake)
    assert fake.writes == writes  # held, to gather what comes next
    assert outcome.requeue_after == pytest.approx(interval)  # and looked at again when due
    assert study_of(fake)["status"]["trials"]["running"] == 1
    clock[0] = NOW + 0.25 + interval / 2
    assert reconcile(r, fake).requeue_after == pytest.approx(interval / 2)  # still due then
    assert fake.writes == writes
    clock[0] = NOW + 0.25 + interval
    reconcile(r, fake)
    assert fake.writes == writes + 1
    assert study_of(fake)["status"]["trials"]["running"] == 2


def test_a_trials_end_its_successor_and_that_ones_start_are_one_status_write() -> None:
    clock = [NOW]
    fake, r = two_running(clock)
    finish(fake, 0, loss=0.25, now=NOW + 10)  # the best so far: an Event
    for t in (NOW + 10, NOW + 10 + r.status.interval):
        clock[0] = t
        reconcile(r, fake)
    run_pod(fake, jobs(fake)[2], NOW + 11)
    for t in (NOW + 20, NOW + 20 + r.status.interval):
        clock[0] = t
        reconcile(r, fake)
    writes, calls = fake.writes, len(fake.calls)
    t = NOW + 40  # long after the last write, before trial RBAC is checked again
    finish(fake, 1, loss=0.5, now=t)  # not the best
    clock[0] = t
    reconcile(r, fake)  # trial 1's result, trial 3 created: the status waits
    assert sorted(jobs(fake)) == [0, 1, 2, 3]
    assert study_of(fake)["status"]["nextTrial"] == 3
    run_pod(fake, jobs(fake)[3], t + 0.5)
    clock[0] = t + 0.5
    reconcile(r, fake)
    clock[0] = t + r.status.interval
    reconcile(r, fake)
    status = study_of(fake)["status"]
    assert (status["nextTrial"], status["trials"]["running"], status["trials"]["succeeded"]) \
        == (4, 2, 2)
    assert fake.writes - writes == 4, fake.calls[calls:]  # result, pod, Job, one status


def test_progress_waits_for_a_new_trial_to_start_but_not_for_ever() -> None:
    clock = [NOW]
    fake, r = two_running(clock)
    writes = fake.writes
    starting, interval = r.status.starting, r.status.interval
    assert starting > interval + 1
    t = NOW + 30
    finish(fake, 0, loss=0.25, now=t)
    clock[0] = t
    assert reconcile(r, fake).requeue_after == pytest.approx(starting)  # trial 2 is pending
    clock[0] = t + interval + 0.5
    reconcile(r, fake)  # past the interval, but trial 2 has not started: still held
    assert study_of(fake)["status"]["trials"]["succeeded"] == 0  # not written yet
    run_pod(fake, jobs(fake)[2], t + interval + 1)
    clock[0] = t + interval + 1
    reconcile(r, fake)  # it runs: written now, with the end, the Job and the start
    assert study_of(fake)["status"]["trials"]["running"] == 2
    assert study_of(fake)["status"]["nextTrial"] == 3
    assert fake.writes - writes == 5  # result, pod released, Job, NewBestTrial, status
    finish(fake, 1, loss=0.5, now=t + 20)
    clock[0] = t + 20
    reconcile(r, fake)  # trial 3 created, and its pod never starts
    clock[0] = t + 20 + starting
    reconcile(r, fake)
    status = study_of(fake)["status"]
    assert (status["trials"]["pending"], status["nextTrial"]) == (1, 4)


def test_a_number_is_not_reused_while_the_status_that_says_so_waits() -> None:
    clock = [NOW]
    fake, r = started(clock)
    run_pod(fake, jobs(fake)[1], NOW)
    reconcile(r, fake)  # Running, written at once
    finish(fake, 0, loss=0.25, now=NOW + 100)
    clock[0] = NOW + 100
    reconcile(r, fake)  # trial 2 created; nextTrial 3 not written yet
    assert study_of(fake)["status"]["nextTrial"] == 2
    fake.delete(paths.job_path(NS, jobs(fake)[2]["metadata"]["name"]))  # gone before that
    clock[0] = NOW + 100.5
    reconcile(r, fake)
    assert 2 not in jobs(fake)
    assert max(jobs(fake)) == 3  # its number stays taken


def test_a_new_best_trial_is_an_event_and_a_plain_success_is_not() -> None:
    clock = [NOW]
    fake, r = started(clock)
    finish(fake, 0, loss=0.25, now=NOW + 10)
    clock[0] = NOW + 10
    reconcile(r, fake)
    finish(fake, 1, loss=0.5, now=NOW + 20)  # worse than trial 0
    clock[0] = NOW + 20
    reconcile(r, fake)
    finish(fake, 2, loss=0.125, now=NOW + 30)
    clock[0] = NOW + 30
    reconcile(r, fake)
    events = [(e["reason"], e["message"]) for e in fake.under(paths.events_path(NS))]
    assert [reason for reason, _ in events if reason == "NewBestTrial"] == ["NewBestTrial"] * 2
    assert ("NewBestTrial", "trial 0: value 0.25") in events
    assert ("NewBestTrial", "trial 2: value 0.125 (was 0.25, trial 0)") in events
    assert not [reason for reason, _ in events if reason.startswith("Trial")]


# ---- metrics from the log (spec.metricsFrom.log) ---------------------------------------------

LOG_PATTERN = r"epoch (?P<step>[0-9]+) loss=(?P<value>[0-9.e+-]+)"


def log_study(fake: FakeApi, **extra) -> None:
    spec = copy.deepcopy(SPEC)
    spec["metricsFrom"] = {"log": {"pattern": LOG_PATTERN}}
    spec.update(extra)
    add_study(fake, spec)


def pod_of(fake: FakeApi, number: int) -> str:
    return paths.pod_path(NS, jobs(fake)[number]["metadata"]["name"] + "-p")


def log_reads(fake: FakeApi) -> list[str]:
    return [path for method, path in fake.calls if method == "GET" and path.endswith("/log")]


def ended_with_log(text: str) -> tuple[FakeApi, Reconciler]:
    """A log study whose trial 0 ended (its SDK annotation says 9.0: not the source) with
    ``text`` as its log; trial 1 runs."""
    fake = FakeApi()
    log_study(fake)
    r = reconciler(fake)
    reconcile(r, fake)
    finish(fake, 0, loss=9.0, now=NOW + 10)
    fake.logs[pod_of(fake, 0)] = text
    return fake, r


def result_of(fake: FakeApi, number: int) -> protocol.TrialResult:
    return protocol.parse_result(jobs(fake)[number]["metadata"]["annotations"][
        names.RESULT_ANNOTATION])


def test_a_trial_whose_log_has_its_metric_is_recorded_with_the_last_match() -> None:
    fake, r = ended_with_log("starting\nepoch 1 loss=0.5\nepoch 2 loss=0.25\ndone\n")
    reconcile(r, fake)
    result = result_of(fake, 0)
    assert (result.state, result.value, result.step) == (TrialState.SUCCEEDED, 0.25, 2)
    assert result.curve == ((1, 0.5), (2, 0.25))
    assert log_reads(fake) == [f"{pod_of(fake, 0)}/log"]  # the running trial 1 is not read


def test_a_log_without_a_match_fails_the_trial_with_the_pattern() -> None:
    fake, r = ended_with_log("loss went down\n")
    reconcile(r, fake)
    result = result_of(fake, 0)
    assert (result.state, result.reason) == (TrialState.FAILED, protocol.METRIC_MISSING)
    assert LOG_PATTERN in (result.message or "")


def test_a_log_the_operator_may_not_read_fails_the_reconcile_and_records_nothing() -> None:
    fake, r = ended_with_log("epoch 1 loss=0.5\n")
    fake.fail("GET", f"{pod_of(fake, 0)}/log", errors.api_error(
        403, '{"kind":"Status","reason":"Forbidden","message":"pods/log is forbidden"}',
        method="GET", path=pod_of(fake, 0)))
    with pytest.raises(errors.Forbidden):
        reconcile(r, fake)
    assert names.RESULT_ANNOTATION not in jobs(fake)[0]["metadata"]["annotations"]
    reconcile(r, fake)  # allowed again: recorded on the retry
    assert names.RESULT_ANNOTATION in jobs(fake)[0]["metadata"]["annotations"]


def test_running_trials_logs_are_read_at_most_once_an_interval_for_early_stopping() -> None:
    clock = [NOW]
    fake = FakeApi()
    log_study(fake, earlyStopping={"name": "median", "minStep": 1, "minTrials": 1})
    r = reconciler(fake, clock)
    reconcile(r, fake)
    for n in (0, 1):
        run_pod(fake, jobs(fake)[n], NOW)
        fake.logs[pod_of(fake, n)] = "epoch 1 loss=1.0\n"
    outcome = reconcile(r, fake)
    assert len(log_reads(fake)) == 2
    assert outcome.requeue_after == pytest.approx(r.logs.interval)
    clock[0] += 1
    fake.logs[pod_of(fake, 1)] = "epoch 1 loss=1.0\nepoch 2 loss=0.5\n"
    reconcile(r, fake)
    assert len(log_reads(fake)) == 2  # read a second ago: the text read then serves
    clock[0] += r.logs.interval
    reconcile(r, fake)
    assert len(log_reads(fake)) == 4
    status = study_of(fake)["status"]
    assert status["trials"]["running"] == 2


def test_early_stopping_prunes_a_running_trial_from_its_log() -> None:
    fake = FakeApi()
    log_study(fake, earlyStopping={"name": "median", "minStep": 1, "minTrials": 1})
    r = reconciler(fake)
    reconcile(r, fake)
    finish(fake, 0, loss=9.0, now=NOW + 10)
    fake.logs[pod_of(fake, 0)] = "epoch 1 loss=0.2\nepoch 2 loss=0.1\n"
    run_pod(fake, jobs(fake)[1], NOW)
    fake.logs[pod_of(fake, 1)] = "epoch 1 loss=4.0\nepoch 2 loss=3.0\n"
    reconcile(r, fake)
    result = result_of(fake, 1)
    assert result.state is TrialState.PRUNED and result.curve == ((1, 4.0), (2, 3.0))


# ---- warm starts (spec.warmStart) ------------------------------------------------------------

BEFORE_UID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def earlier_study(fake: FakeApi, values: dict[float, float | None], *,
                  metric: str = "loss", signed_with: bytes = KEY) -> None:
    """Study "before" (another UID) with one finished trial per x in ``values`` (None: Failed),
    recorded and signed as the operator records them."""
    spec = copy.deepcopy(SPEC)
    spec["objective"]["metric"] = metric
    before = {"metadata": {"name": "before", "namespace": NS, "uid": BEFORE_UID}}
    for n, (x, value) in enumerate(values.items()):
        job = builders.build_trial_job(before, specs.parse_spec(spec), n, {"x": x})
        stored = fake.put(paths.job_path(NS, job["metadata"]["name"]), job)
        state = TrialState.SUCCEEDED if value is not None else TrialState.FAILED
        result = protocol.TrialResult(state, None if value is not None else "ExitCode", value)
        fake.put(paths.job_path(NS, job["metadata"]["name"]), paths.merged(
            stored, builders.result_patch(result, stored, signed_with)))


def warm_spec() -> dict:
    spec = copy.deepcopy(SPEC)
    spec["algorithm"] = {"name": "gp", "seed": 3}
    spec["warmStart"] = {"studies": ["before", "missing"]}
    return spec


def test_a_warm_started_studys_first_trials_come_from_the_earlier_studys_history() -> None:
    fake = FakeApi()
    earlier_study(fake, {-1.5: 2.25, -0.5: 0.25, 0.25: 0.0625, 1.0: 1.0, 1.8: None})
    add_study(fake, warm_spec())
    reconcile(reconciler(fake), fake)
    status = study_of(fake)["status"]
    assert status["warmStart"] == {"trials": 4, "message": (
        "before: 4 of 4 succeeded trials; missing: no trials found in this namespace")}
    prior = warm.prior_history(specs.parse_spec(warm_spec()), [warm.PriorStudy(
        "before", "loss", "minimize", tuple(
            Trial(number=n, params={"x": x}, state=TrialState.SUCCEEDED, value=x * x)
            for n, x in enumerate((-1.5, -0.5, 0.25, 1.0))))])
    proposals = core.suggest(specs.parse_spec(warm_spec()), list(prior.trials), 2)
    assert [json.loads(j["metadata"]["annotations"][names.PARAMS_ANNOTATION])
            for _, j in sorted(jobs(fake).items())] == proposals
    assert status["nextTrial"] == 2 and status["trials"]["total"] == 2


def test_results_another_key_signed_and_other_objectives_do_not_carry_over() -> None:
    fake = FakeApi()
    earlier_study(fake, {-1.5: 2.25, -0.5: 0.25}, signed_with=b"x" * 32)
    add_study(fake, warm_spec())
    reconcile(reconciler(fake), fake)
    assert study_of(fake)["status"]["warmStart"]["trials"] == 0
    fake = FakeApi()
    earlier_study(fake, {-1.5: 2.25}, metric="accuracy")
    add_study(fake, warm_spec())
    reconcile(reconciler(fake), fake)
    assert study_of(fake)["status"]["warmStart"]["message"].startswith(
        "before: not used, it optimises accuracy (minimize)")


def test_a_log_the_kubelet_does_not_serve_now_waits_without_holding_the_study_back() -> None:
    fake, r = ended_with_log("epoch 1 loss=0.5\n")
    fake.fail("GET", f"{pod_of(fake, 0)}/log", errors.api_error(
        500, '{"kind":"Status","reason":"InternalError","message":"dial tcp: connection '
        'refused"}', method="GET", path=pod_of(fake, 0)))
    outcome = reconcile(r, fake)
    assert names.RESULT_ANNOTATION not in jobs(fake)[0]["metadata"]["annotations"]
    assert outcome.requeue_after == pytest.approx(r.logs.interval)  # a later read is due
    counts = study_of(fake)["status"]["trials"]
    assert (counts["running"], counts["succeeded"]) == (1, 0)  # trial 0 waits for its log
    reconcile(r, fake)
    assert result_of(fake, 0).value == 0.5


def test_the_earlier_studys_trials_are_read_again_only_when_one_of_its_jobs_changed(
        monkeypatch) -> None:
    import kubetune.kube.reconcile as reconciling

    reads: list[str] = []
    real = reconciling.prior_study
    monkeypatch.setattr(reconciling, "prior_study",
                        lambda name, found, key: reads.append(name) or real(name, found, key))
    fake = FakeApi()
    earlier_study(fake, {-1.5: 2.25, -0.5: 0.25, 0.25: 0.0625, 1.0: 1.0})
    add_study(fake, warm_spec())
    r = reconciler(fake)
    reconcile(r, fake)
    reconcile(r, fake)
    assert reads == ["before", "missing"]  # once, for both names
    path = next(p for p, o in fake.objects.items() if "/jobs/" in p
                and o["metadata"]["labels"].get(names.STUDY_UID_LABEL) == BEFORE_UID)
    fake.put(path, fake.objects[path])  # a new resourceVersion
    reconcile(r, fake)
    assert reads == ["before", "missing"] * 2


@pytest.fixture
def created_lines(caplog, monkeypatch):
    """``with created_lines() as lines: ...`` fills ``lines`` with the operator's "created" log
    lines of the block, as benchmarks/bench_scale.py matches them (``bench_scale.CREATED``)."""
    import contextlib
    import logging
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import bench_scale

    @contextlib.contextmanager
    def capture():
        lines: list = []
        with caplog.at_level(logging.INFO, logger="kubetune.reconcile"):
            start = len(caplog.records)
            yield lines
            lines += [m for rec in caplog.records[start:]
                      if (m := bench_scale.CREATED.search(rec.getMessage()))]

    return capture


def test_each_created_trial_is_logged_with_the_samplers_time(created_lines) -> None:
    """One line per trial Job, in the form benchmarks/bench_scale.py reads."""
    fake = FakeApi()
    add_study(fake)
    r = reconciler(fake)
    with created_lines() as found:
        reconcile(r, fake)
    lines = [m.groups() for m in found]
    names = {j["metadata"]["name"] for j in jobs(fake).values()}
    assert sorted(g[0] for g in lines) == ["0", "1"]
    assert {g[3] for g in lines} == names
    assert {(g[4], g[6]) for g in lines} == {(SPEC["algorithm"]["name"], "2")}
    assert all(float(g[5]) >= 0 for g in lines)


def test_studies_take_turns_for_progress_writes() -> None:
    """Across studies the status writer spaces progress writes ``gap`` apart, first due first
    served; what a waiting tool reads is never held."""
    from kubetune.kube.status_writer import StatusWriter

    clock = [100.0]
    writer = StatusWriter(FakeApi(), interval=2.0, starting=10.0, rate=4.0,
                          clock=lambda: clock[0])
    running = {"phase": "Running", "trials": {"pending": 0, "running": 1, "succeeded": 0}}
    more = {**running, "trials": {"pending": 0, "running": 1, "succeeded": 1}}

    def study(uid: str) -> dict:
        return {"metadata": {"uid": uid, "namespace": NS, "name": uid}, "status": running}

    studies = [study(f"s{i}") for i in range(3)]
    assert [writer.hold(s, more) for s in studies] == [2.0] * 3  # each waits its interval
    clock[0] = 102.0
    assert [writer.hold(s, more) for s in studies] == pytest.approx([0.0, 0.25, 0.5])
    clock[0] = 102.25
    assert writer.hold(studies[1], more) == 0.0  # its turn
    assert writer.hold(studies[2], more) == pytest.approx(0.25)
    assert writer.hold(studies[0], {**more, "phase": "Succeeded"}) == 0.0  # never held


def test_trials_that_wait_for_a_node_or_a_queue_hold_progress_no_longer_than_usual() -> None:
    from kubetune.kube.status_writer import StatusWriter

    clock = [100.0]
    writer = StatusWriter(FakeApi(), interval=2.0, starting=10.0, rate=None,
                          clock=lambda: clock[0])
    before = {"phase": "Running", "trials": {"pending": 2, "running": 4, "succeeded": 0}}
    after = {**before, "trials": {"pending": 1, "running": 4, "succeeded": 1}}
    study = {"metadata": {"uid": "u", "namespace": NS, "name": "s"}, "status": before}
    assert writer.hold(study, after) == 10.0  # a new trial starting: its start may join
    other = {"metadata": {"uid": "v", "namespace": NS, "name": "t"}, "status": before}
    assert writer.hold(other, after, starting=False) == 2.0  # "Insufficient nvidia.com/gpu"


def test_a_create_that_failed_leaves_its_number_free() -> None:
    """The apiserver down while trials are created: nothing was made, so no number is lost."""
    clock = [NOW]
    fake, r = two_running(clock)
    create = r.apply.create

    async def down(*args, **kwargs):
        raise errors.ServerError(503, "the apiserver is restarting")

    finish(fake, 0, loss=0.25, now=NOW + 10)
    clock[0] = NOW + 10
    r.apply.create = down  # type: ignore[method-assign]
    with pytest.raises(errors.ServerError):
        reconcile(r, fake)
    r.apply.create = create  # type: ignore[method-assign]
    clock[0] = NOW + 11
    reconcile(r, fake)
    assert sorted(jobs(fake)) == [0, 1, 2]  # trial 2, not 3 with 2 counted Lost
    clock[0] = NOW + 30
    reconcile(r, fake)
    assert study_of(fake)["status"]["trials"]["lost"] == 0


def test_a_trial_that_replaces_one_that_ended_is_logged_and_timed_from_that_end(
        created_lines) -> None:
    import time

    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    r.store.ends.append(time.monotonic() - 0.5)  # the end reached the operator 0.5 s ago
    with created_lines() as found:
        reconcile(r, fake)
    (line,) = found
    assert line.group(1) == "2" and 500 <= float(line.group(8)) < 5000
    # Its parts: the 0.5 s before the reconcile began, the look, the create.
    begin, look, create = (float(line.group(i)) for i in (9, 10, 11))
    assert begin >= 500
    assert abs(begin + look + create - float(line.group(8))) < 1.0
    histogram = r.metrics.registry.get_sample_value("kubetune_trial_turnaround_seconds_count")
    assert histogram == 1


def test_a_finished_trials_successor_and_its_result_are_written_at_the_same_time() -> None:
    """The create of trial 2 and the record of trial 0's result are in flight together: the
    create answers only once the record has been sent (sequential calls would never end)."""
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    create, record = r.apply.create, r.apply.record
    recording = asyncio.Event()
    both: list[str] = []

    async def create_after_record(study, number, manifest):
        await asyncio.wait_for(recording.wait(), timeout=5)
        both.append("create")
        return await create(study, number, manifest)

    async def record_first(*args, **kwargs):
        recording.set()
        both.append("record")
        await asyncio.sleep(0.01)
        return await record(*args, **kwargs)

    r.apply.create = create_after_record  # type: ignore[method-assign]
    r.apply.record = record_first  # type: ignore[method-assign]
    reconcile(r, fake)
    assert both == ["record", "create"]
    assert sorted(jobs(fake)) == [0, 1, 2]
    assert study_of(fake)["status"]["trials"]["succeeded"] == 1


def test_a_failed_record_fails_the_reconcile_after_the_create_ends() -> None:
    """An error writing one result is raised once the create beside it has ended: the new
    trial stands, and the result is written by the retried reconcile."""
    fake, r = started()
    finish(fake, 0, loss=0.25, now=NOW + 10)
    record = r.apply.record

    async def refuse(*args, **kwargs):
        raise errors.ServerError(500, "etcd timed out")

    r.apply.record = refuse  # type: ignore[method-assign]
    with pytest.raises(errors.ServerError):
        reconcile(r, fake)
    assert sorted(jobs(fake)) == [0, 1, 2]
    r.apply.record = record  # type: ignore[method-assign]
    reconcile(r, fake)
    assert sorted(jobs(fake)) == [0, 1, 2]
    assert study_of(fake)["status"]["trials"]["succeeded"] == 1


def test_a_trial_that_fills_a_first_place_takes_no_end_for_its_turnaround(
        created_lines) -> None:
    """Trial 0 ends before trial 1, one of the study's first two, could be made: trial 1
    replaces no end, so trial 2, which replaces trial 0, is the one timed from that end."""
    import time

    fake = FakeApi()
    add_study(fake)
    r = reconciler(fake, [NOW])
    create = r.apply.create

    async def refuse_trial_1(study, number, manifest):
        if number == 1:
            raise errors.ServerError(503, "the apiserver is restarting")
        return await create(study, number, manifest)

    r.apply.create = refuse_trial_1  # type: ignore[method-assign]
    with pytest.raises(errors.ServerError):
        reconcile(r, fake)
    r.apply.create = create  # type: ignore[method-assign]
    assert sorted(jobs(fake)) == [0]
    finish(fake, 0, loss=0.25, now=NOW + 10)
    r.store.ends.append(time.monotonic() - 0.5)  # trial 0's end reached the operator
    with created_lines() as found:
        reconcile(r, fake)
    lines = {m.group(1): m for m in found}
    assert set(lines) == {"1", "2"}
    assert lines["1"].group(8) is None
    assert 500 <= float(lines["2"].group(8)) < 5000
    histogram = r.metrics.registry.get_sample_value("kubetune_trial_turnaround_seconds_count")
    assert histogram == 1


def test_a_gp_study_awaits_the_sampler_processes_and_creates_their_proposals() -> None:
    """The sampler of a study that fits a model runs apart: decide asks, the reconcile awaits
    the answer without a thread, and decides again with it."""
    asked: list[tuple[int, int]] = []

    class Processes:
        @staticmethod
        def fits(spec) -> bool:
            return spec.algorithm.name == "gp"

        async def suggest(self, spec, trials, n):
            asked.append((len(trials), n))
            return core.suggest(spec, trials, n)

    gp = copy.deepcopy(SPEC)
    gp["algorithm"] = {"name": "gp", "seed": 7}
    fake = FakeApi()
    add_study(fake, gp)
    r = Reconciler(fake, Store(fake), key=KEY, clock=lambda: NOW,
                   access=TrialAccess(fake, clock=lambda: NOW),
                   samplers=Processes())  # type: ignore[arg-type]
    reconcile(r, fake)
    assert asked == [(0, 2)]
    made = {n: json.loads(j["metadata"]["annotations"][names.PARAMS_ANNOTATION])
            for n, j in jobs(fake).items()}
    expected = core.suggest(specs.parse_spec({**gp, "algorithm": {"name": "gp", "seed": 7}}),
                            [], 2)
    assert [made[0], made[1]] == [dict(p) for p in expected]
