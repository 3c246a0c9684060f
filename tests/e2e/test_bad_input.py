"""Bad input, table-driven: malformed studies and malformed metric reports.

Every malformed study is refused by the API server (schema, CEL, size) with a message that
names the field, or accepted and then Stalled with reason InvalidSpec and a message that does,
with nothing created. Every malformed metric report fails its trial with the reason the protocol
gives it. Study names up to Kubernetes' 253 characters run. Meanwhile a healthy study in the
same namespace runs to its end and the operator never restarts.

All cases are applied at once (one module fixture) and each is then checked on its own.
"""

from __future__ import annotations

import copy
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import POD_LOGIN, Cluster, OperatorProcess, wait_for
from kubetune.kube import conventions as names
from kubetune_devcluster.pki import Pki
from kubetune_devcluster.rest import ApiError, Rest
from studies import study
from test_operator import condition, is_true, results, trial_jobs

STUDIES = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{{ns}}/{names.PLURAL}"


@dataclass(frozen=True)
class Bad:
    """A study made from the default by ``change``; ``outcome`` is refused, stalled or runs."""

    id: str
    change: Callable[[dict], Any]
    outcome: str
    needle: str = ""


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A change that sets ``spec.<path>`` (dotted) to ``value``."""
    def change(manifest: dict) -> None:
        node = manifest["spec"]
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)
    return change


def _param(name: str, value: dict) -> Callable[[dict], None]:
    return _set(f"searchSpace.{name}", value)


def _pod_spec(**fields: Any) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"].update(fields)
    return change


def _container(**fields: Any) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(
            fields)
    return change


def _many_params(n: int, *, values: int = 0, length: int = 8,
                 kinds: tuple[int, ...] = (0, 1, 2, 3)) -> Callable[[dict], None]:
    """``n`` parameters of the ``kinds`` (float, log float, stepped int, categorical) in turn,
    with ``values`` categorical values of ``length`` characters."""
    def change(manifest: dict) -> None:
        space = {}
        for i in range(n):
            kind = kinds[i % len(kinds)]
            if kind == 0:
                space[f"f{i}"] = {"type": "float", "low": -1.0, "high": 1.0}
            elif kind == 1:
                space[f"l{i}"] = {"type": "float", "low": 1e-6, "high": 1.0, "log": True}
            elif kind == 2:
                space[f"i{i}"] = {"type": "int", "low": 0, "high": 1000, "step": 10}
            else:
                space[f"c{i}"] = {"type": "categorical",
                                  "values": [f"{j:0{length}d}" for j in range(values or 3)]}
        manifest["spec"]["searchSpace"] = space
    return change


def _rename(name: str) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        manifest["metadata"]["name"] = name
    return change


def _drop(key: str) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        del manifest["spec"][key]
    return change


RUNS_BUDGET = _set("budget", {"maxTrials": 2, "parallelism": 2, "maxFailedTrials": 0})
LONG_NAME = ("a" * 60 + ".") * 4 + "z" * 8  # 252 characters with dots, one more below
MAX_NAME = LONG_NAME + "y"  # 253: Kubernetes' own limit, so it must work

BAD_STUDIES = [
    # The OpenAPI schema of the CRD.
    Bad("objective-missing", _drop("objective"), "refused",
        "give exactly one of objective (one metric) and objectives"),
    Bad("direction-unknown", _set("objective.direction", "down"), "refused",
        "spec.objective.direction: Unsupported value"),
    Bad("metric-with-spaces", _set("objective.metric", "val loss!"), "refused",
        "spec.objective.metric"),
    Bad("metric-too-long", _set("objective.metric", "m" * 129), "refused",
        "spec.objective.metric: Too long"),
    Bad("search-space-empty", _set("searchSpace", {}), "refused", "spec.searchSpace"),
    Bad("65-parameters", _many_params(65), "refused", "spec.searchSpace: Too many"),
    Bad("param-type-unknown", _param("x1", {"type": "double", "low": 0, "high": 1}), "refused",
        "spec.searchSpace.x1.type: Unsupported value"),
    Bad("10000-categorical-values",
        _param("c", {"type": "categorical", "values": list(range(10_000))}), "refused",
        "spec.searchSpace.c.values: Too many"),
    Bad("low-a-string", _param("x1", {"type": "float", "low": "0.1", "high": 1.0}), "refused",
        "spec.searchSpace.x1.low: Invalid value"),
    Bad("bound-beyond-1e15", _param("x1", {"type": "float", "low": 0.0, "high": 1e300}),
        "refused", "spec.searchSpace.x1.high"),
    Bad("seed-negative", _set("algorithm", {"name": "random", "seed": -1}), "refused",
        "spec.algorithm.seed"),
    Bad("algorithm-unknown", _set("algorithm", {"name": "bayesopt"}), "refused",
        "spec.algorithm.name: Unsupported value"),
    Bad("max-trials-negative", _set("budget.maxTrials", -1), "refused", "spec.budget.maxTrials"),
    Bad("max-trials-over-10000", _set("budget.maxTrials", 10_001), "refused",
        "spec.budget.maxTrials"),
    Bad("parallelism-zero", _set("budget.parallelism", 0), "refused", "spec.budget.parallelism"),
    Bad("max-failed-negative", _set("budget.maxFailedTrials", -1), "refused",
        "spec.budget.maxFailedTrials"),
    Bad("timeout-negative", _set("budget.trialTimeoutSeconds", -5), "refused",
        "spec.budget.trialTimeoutSeconds"),
    Bad("reduction-factor-one", _set("earlyStopping", {"name": "asha", "reductionFactor": 1}),
        "refused", "spec.earlyStopping.reductionFactor"),
    Bad("suspend-a-string", _set("suspend", "yes"), "refused", "spec.suspend"),
    Bad("job-template-a-list", _set("jobTemplate", [1, 2]), "refused", "spec.jobTemplate"),
    Bad("name-254-characters", _rename(MAX_NAME + "x"), "refused",
        "must be no more than 253 characters"),
    Bad("spec-over-the-size-limit", _many_params(64, values=256, length=256, kinds=(3,)),
        "refused", "too large"),
    # CEL rules.
    Bad("low-above-high", _param("x1", {"type": "float", "low": 2.0, "high": -2.0}), "refused",
        "low must be below high"),
    Bad("log-with-negative-low",
        _param("x1", {"type": "float", "low": -1.0, "high": 1.0, "log": True}), "refused",
        "a log-scaled parameter needs low > 0"),
    Bad("parallelism-over-max-trials",
        _set("budget", {"maxTrials": 3, "parallelism": 5}), "refused",
        "parallelism must not exceed maxTrials"),
    Bad("float-without-high", _param("x1", {"type": "float", "low": 0.0}), "refused",
        "a float or int parameter needs low and high"),
    Bad("categorical-with-low", _param("c", {"type": "categorical", "values": [1], "low": 0}),
        "refused", "a categorical parameter takes no low, high, step or log"),
    Bad("step-with-log",
        _param("x1", {"type": "float", "low": 1.0, "high": 2.0, "log": True, "step": 0.5}),
        "refused", "step cannot be combined with log"),
    Bad("int-bound-a-fraction", _param("x1", {"type": "int", "low": 0.5, "high": 4}), "refused",
        "low, high and step of an int parameter must be whole numbers"),
    Bad("lattice-over-1e12",
        _param("x1", {"type": "float", "low": 0.0, "high": 1e6, "step": 1e-7}), "refused",
        "a parameter may have at most 1e+12 values"),
    Bad("param-name-not-an-env-var", _param("1st layer", {"type": "int", "low": 1, "high": 4}),
        "refused", "spec.searchSpace: Invalid value: a parameter name is a letter or _"),
    Bad("env-names-clash", lambda m: m["spec"]["searchSpace"].update(
        {"a.b": {"type": "int", "low": 1, "high": 4}, "a_b": {"type": "int", "low": 1,
                                                            "high": 4}}),
        "refused", "two parameter names become the same KUBETUNE_PARAM_ variable"),
    Bad("grid-float-without-step", _set("algorithm", {"name": "grid"}), "refused",
        "grid search needs a step on every float parameter"),
    Bad("min-step-over-max-step",
        _set("earlyStopping", {"name": "median", "minStep": 10, "maxStep": 5}), "refused",
        "spec.earlyStopping: Invalid value: minStep must be below maxStep"),
    Bad("asha-min-step-zero", _set("earlyStopping", {"name": "asha", "minStep": 0}), "refused",
        "minStep must be at least 1 for asha"),
    # What only the operator's pydantic model and the dry run can tell: Stalled, InvalidSpec.
    Bad("float-step-not-dividing",
        _param("x1", {"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}), "stalled",
        "searchSpace.x1.step"),
    Bad("categorical-repeats", _param("c", {"type": "categorical", "values": ["a", "b", "a"]}),
        "stalled", "repeats values[0]"),
    Bad("float-with-values",
        _param("x1", {"type": "float", "low": 0.0, "high": 1.0, "values": [0.5]}), "stalled",
        "only categorical parameters take values"),
    Bad("job-template-without-containers", _pod_spec(containers=[]), "stalled",
        "must list at least one container"),
    Bad("job-template-without-spec", _set("jobTemplate", {"metadata": {}}), "stalled",
        "jobTemplate.spec"),
    Bad("job-template-stray-field", lambda m: m["spec"]["jobTemplate"].update(template={}),
        "stalled", "is not a field of a JobTemplateSpec"),
    Bad("job-template-backoff-limit", _set("jobTemplate.spec.backoffLimit", 2), "stalled",
        "budget.maxRetries"),
    Bad("metrics-from-unknown-container",
        _set("metricsFrom", {"log": {"pattern": "(?P<value>[0-9.]+)", "container": "nope"}}),
        "stalled", "names no container"),
    Bad("metrics-from-both", _set("metricsFrom", {"terminationMessage": {}, "log": {
        "pattern": "(?P<value>[0-9.]+)"}}), "refused", "exactly one of terminationMessage"),
    Bad("max-retries-negative", _set("budget.maxRetries", -1), "refused",
        "spec.budget.maxRetries"),
    Bad("no-template", lambda m: m["spec"].pop("jobTemplate"), "refused",
        "exactly one of jobTemplate"),
    Bad("trial-template-of-an-unknown-kind",
        lambda m: m["spec"].update(trialTemplate={
            "apiVersion": "example.com/v1", "kind": "Trainer",
            "spec": {"template": m["spec"].pop("jobTemplate")["spec"]["template"]}}),
        "stalled", "which kubetune does not know"),
    Bad("workers-zero", _set("trial", {"workers": 0}), "refused", "spec.trial.workers"),
    Bad("workers-with-template-completions",
        lambda m: (_set("trial", {"workers": 2})(m), _set("jobTemplate.spec.completions", 2)(m)),
        "stalled", "jobTemplate.spec.completions: is set by trial.workers"),
    Bad("when-names-an-unknown-parameter",
        _param("x2", {"type": "float", "low": 0, "high": 1, "when": {"nope": ["a"]}}),
        "stalled", "names no other parameter of searchSpace"),
    Bad("when-on-a-float-parameter",
        _param("x2", {"type": "float", "low": 0, "high": 1, "when": {"x1": [0.5]}}),
        "stalled", "a condition needs a categorical one"),
    Bad("objectives-with-cmaes",
        lambda m: (m["spec"].pop("objective"), m["spec"].update(
            algorithm={"name": "cmaes"}, objectives=[
                {"metric": "loss", "direction": "minimize"},
                {"metric": "size", "direction": "minimize"}])),
        "stalled", "spec.algorithm.name: takes one objective"),
    Bad("nsga2-with-one-objective", _set("algorithm", {"name": "nsga2"}), "stalled",
        "is for studies with several objectives"),
    Bad("constraint-min-over-max", _set("constraints", [{"metric": "m", "min": 2, "max": 1}]),
        "refused", "min must not exceed max"),
    Bad("container-without-image", _container(image=None), "stalled",
        "containers[0].image: Required value"),
    Bad("container-name-invalid", _container(name="Trial_1"), "stalled",
        "containers[0].name: Invalid value"),
    Bad("resources-not-a-quantity", _container(resources={"limits": {"cpu": "lots"}}),
        "stalled", "quantities must match"),
    Bad("restart-policy-always", _pod_spec(restartPolicy="Always"), "stalled",
        "restartPolicy"),
    # Valid, if large or at the edge of a CEL rule: these must run.
    Bad("int-bounds-written-as-floats", lambda m: (
        _param("n", {"type": "int", "low": 1.0, "high": 4.0, "log": True, "step": 1})(m),
        m["spec"]["searchSpace"].update({"name.with-dots_9": {"type": "categorical",
                                                              "values": [1, "a"]}}),
        RUNS_BUDGET(m)), "runs"),
    Bad("name-of-253-characters", lambda m: (_rename(MAX_NAME)(m), RUNS_BUDGET(m)), "runs"),
    Bad("64-parameters-of-256-values", lambda m: (_many_params(64, values=256)(m),
                                                  RUNS_BUDGET(m)), "runs"),
    Bad("800-kb-study", lambda m: (_many_params(64, values=256, length=200)(m),
                                   RUNS_BUDGET(m)), "runs"),
]

# Runs in the trial pod: writes `eval(argv[1])` as its own metrics annotation and exits 0.
REPORTER = POD_LOGIN + textwrap.dedent("""
    import sys, urllib.request, urllib.error
    text = eval(sys.argv[1])
    body = {"metadata": {"annotations": {"kubetune.dev/metrics": text}}}
    url = "%s/api/v1/namespaces/%s/pods/%s" % (
        server, os.environ["POD_NAMESPACE"], os.environ["POD_NAME"])
    req = urllib.request.Request(url, method="PATCH", data=json.dumps(body).encode(), headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"})
    try:
        urllib.request.urlopen(req, context=ctx)
        print("patched", len(text))
    except urllib.error.HTTPError as e:
        print("refused", e.code, e.read()[:300])
""")

# (id, Python expression for the annotation text, the trial's state and reason)
BAD_METRICS = [
    ("not-json", "'{\"step\": 1, \"metrics\": {'", "Failed", "MetricInvalid"),
    ("a-list", "json.dumps([1, 2])", "Failed", "MetricInvalid"),
    ("step-a-string",
     "json.dumps({'step': 'one', 'metrics': {'loss': 0.5}, 'final': True})", "Failed",
     "MetricInvalid"),
    ("value-a-string",
     "json.dumps({'step': 1, 'metrics': {'loss': '0.5'}, 'final': True})", "Failed",
     "MetricInvalid"),
    ("final-a-string",
     "json.dumps({'step': 1, 'metrics': {'loss': 0.5}, 'final': 'yes'})", "Failed",
     "MetricInvalid"),
    ("step-negative", "json.dumps({'step': -1, 'metrics': {'loss': 0.5}, 'final': True})",
     "Failed", "MetricInvalid"),
    ("nested-deeply", "'[' * 30000 + ']' * 30000", "Failed", "MetricInvalid"),
    ("100-kib", "json.dumps({'step': 1, 'metrics': {'loss': 0.5}, 'pad': 'x' * 102400})",
     "Failed", "MetricInvalid"),
    # The API server refuses annotations over 256 KiB: nothing is reported at all.
    ("300-kib", "json.dumps({'step': 1, 'metrics': {'loss': 0.5}, 'pad': 'x' * 307200})",
     "Failed", "MetricMissing"),
    ("nan", "'{\"step\": 1, \"metrics\": {\"loss\": NaN}, \"final\": true}'", "Failed",
     "MetricNotFinite"),
    ("infinity", "'{\"step\": 1, \"metrics\": {\"loss\": -Infinity}, \"final\": true}'",
     "Failed", "MetricNotFinite"),
    ("overflow", "'{\"step\": 1, \"metrics\": {\"loss\": 1e999}, \"final\": true}'", "Failed",
     "MetricNotFinite"),
    ("unknown-metric",
     "json.dumps({'step': 1, 'metrics': {'accuracy': 0.9}, 'final': True})", "Failed",
     "MetricMissing"),
    ("well-formed", "json.dumps({'step': 1, 'metrics': {'loss': 0.5}, 'final': True})",
     "Succeeded", ""),
]


@dataclass
class Outcomes:
    namespace: str
    refused: dict[str, str]  # id -> the API server's message
    studies: dict[str, dict]  # id -> the study once it settled
    trials: dict[str, dict]  # metric case id -> its trial's result (state, reason)
    bystander: dict
    starts: int
    log: str  # what the operator logged meanwhile


def _name(case_id: str) -> str:
    return f"bad-{case_id}"


def _settled(obj: dict) -> bool:
    return any(is_true(obj, kind) for kind in ("Stalled", "Succeeded", "Failed"))


@pytest.fixture(scope="module")
def outcomes(cluster: Cluster, operator: OperatorProcess) -> Iterator[Outcomes]:
    operator.ensure_running()
    starts = operator.starts
    log_from = operator.log_path.stat().st_size if operator.log_path.exists() else 0
    ns = f"bad-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    pki = Pki(cluster.state.root / "pki")
    rest = Rest(cluster.state.server, str(pki.ca), str(pki.cert("admin")),
                str(pki.key("admin")))
    path = STUDIES.format(ns=ns)
    try:
        rest.post(path, study("bystander", toy=["quadratic", "--steps", "2", "--sleep", "0.3"],
                              budget={"maxTrials": 6, "parallelism": 2, "maxFailedTrials": 0}))
        refused: dict[str, str] = {}
        accepted: dict[str, str] = {}
        for case in BAD_STUDIES:
            manifest = study(_name(case.id), budget={"maxTrials": 2, "parallelism": 1})
            case.change(manifest)
            try:
                created = rest.post(path, manifest)
                accepted[case.id] = created["metadata"]["name"]
            except ApiError as e:
                refused[case.id] = e.message
        for case_id, expr, _, _ in BAD_METRICS:
            manifest = study(_name(case_id),
                             budget={"maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0},
                             container={"command": ["python", "-c", REPORTER, expr]})
            accepted[case_id] = rest.post(path, manifest)["metadata"]["name"]
        names_left = {*accepted.values(), "bystander"}
        settled: dict[str, dict] = {}

        def all_settled() -> bool:
            for obj in rest.get(path)["items"]:
                if obj["metadata"]["name"] in names_left and _settled(obj):
                    settled[obj["metadata"]["name"]] = obj
            return names_left <= set(settled)

        wait_for(all_settled, timeout=240, interval=2,
                 what=f"every study to settle (left: {names_left - set(settled)})")
        time.sleep(1)  # let a wrong Job, if any, show up
        trials = {}
        for case_id, *_ in BAD_METRICS:
            res = results(trial_jobs(cluster, ns, _name(case_id)))
            trials[case_id] = {"state": res[0].state.value, "reason": res[0].reason or "",
                               "message": res[0].message or ""} if 0 in res else {}
        with operator.log_path.open("rb") as f:
            f.seek(log_from)
            log = f.read().decode(errors="replace")
        yield Outcomes(ns, refused, {k: settled[v] for k, v in accepted.items()}, trials,
                       settled["bystander"], starts, log)
    finally:
        rest.close()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.parametrize("case", BAD_STUDIES, ids=[c.id for c in BAD_STUDIES])
def test_malformed_study(cluster: Cluster, outcomes: Outcomes, case: Bad):
    if case.outcome == "refused":
        assert case.id in outcomes.refused, f"accepted: {outcomes.studies.get(case.id)}"
        assert case.needle in outcomes.refused[case.id]
        return
    assert case.id in outcomes.studies, f"refused: {outcomes.refused.get(case.id)}"
    obj = outcomes.studies[case.id]
    name = obj["metadata"]["name"]
    if case.outcome == "runs":
        assert is_true(obj, "Succeeded"), obj.get("status")
        jobs = trial_jobs(cluster, outcomes.namespace, names.label_value(name))
        assert len(jobs) == 2
        assert all(len(j["metadata"]["name"]) <= 63 for j in jobs)
        return
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["status"] == "True", obj.get("status")
    assert stalled["reason"] == "InvalidSpec"
    assert case.needle in stalled["message"]
    assert not is_true(obj, "Ready")
    assert trial_jobs(cluster, outcomes.namespace, name) == [], "nothing is created"


@pytest.mark.parametrize(("case_id", "expr", "state", "reason"), BAD_METRICS,
                         ids=[m[0] for m in BAD_METRICS])
def test_malformed_metric_report(outcomes: Outcomes, case_id, expr, state, reason):
    trial = outcomes.trials[case_id]
    assert trial.get("state") == state, trial
    assert trial["reason"] == reason
    obj = outcomes.studies[case_id]
    if state == "Failed":
        assert condition(obj, "Failed")["reason"] == "TooManyFailedTrials"
        assert trial["message"], "a failed trial says why"
    else:
        assert obj["status"]["bestTrial"]["value"] == 0.5


def test_no_other_study_is_affected(outcomes: Outcomes, operator: OperatorProcess):
    assert is_true(outcomes.bystander, "Succeeded")
    assert outcomes.bystander["status"]["trials"]["succeeded"] == 6
    assert operator.proc is not None and operator.proc.poll() is None
    assert operator.starts == outcomes.starts, "the operator was restarted"
    errors = [line for line in outcomes.log.splitlines() if "Traceback" in line]
    assert errors == [], "the operator logged exceptions:\n" + "\n".join(errors)[:3000]
