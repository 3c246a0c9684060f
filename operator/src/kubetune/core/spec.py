"""Pydantic models of a TuningStudy's ``.spec`` and ``.status`` (docs/design.md section 2).

These models are the single source of the CRD's openAPIV3Schema: every list and string has a
size limit and every number its bounds, so that the API server can refuse an oversized study
and CEL rules stay within their cost budget. Defaults live here too:

- ``algorithm``: name ``auto``, no seed (the kube layer derives one from the study's UID);
- ``budget``: ``maxTrials`` 20, ``parallelism`` 1, ``maxFailedTrials`` 5 (the study fails when
  more than that many trials have Failed), no ``trialTimeoutSeconds``, ``maxRetries`` 3;
- ``earlyStopping``: none; when given, ``minStep`` 1, ``reductionFactor`` 3 (asha) and
  ``minTrials`` 5 (median);
- ``suspend``: false.

Attributes are snake_case with camelCase aliases; both spellings are accepted. ``parse_spec``
validates a spec and turns every problem into one line ``spec.<path>: <what is wrong>
(got <value>); <fix>`` of a ``SpecError``. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from kubetune.core import _spec_problems as problems
from kubetune.core import workloads
from kubetune.core.objectives import Constraint, Objective
from kubetune.core.space import Space

__all__ = [
    "MAX_BOUND",
    "MAX_CATEGORICAL_VALUES",
    "MAX_PARAMS",
    "MAX_PARAM_NAME_LENGTH",
    "MAX_TRIALS",
    "MAX_VALUE_LENGTH",
    "PARAM_NAME_PATTERN",
    "AlgorithmSpec",
    "BudgetSpec",
    "Condition",
    "ConstraintSpec",
    "EarlyStoppingSpec",
    "LogSource",
    "MetricsFromSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "ParetoObjectiveSpec",
    "SpecError",
    "StudySpec",
    "StudyStatus",
    "TerminationMessageSource",
    "TrialCounts",
    "TrialSummary",
    "WarmStartSpec",
    "WarmStartStatus",
    "constraints_of",
    "minimize",
    "objectives_of",
    "parse_spec",
    "reported",
    "space_of",
    "watched",
]

MAX_PARAMS = problems.MAX_PARAMS
MAX_PARAM_NAME_LENGTH = problems.MAX_PARAM_NAME_LENGTH
PARAM_NAME_PATTERN = problems.PARAM_NAME_PATTERN
MAX_CATEGORICAL_VALUES = 256
MAX_VALUE_LENGTH = 256
MAX_BOUND = problems.MAX_BOUND
MAX_TRIALS = 10_000
MAX_ENQUEUED = 100  # spec.enqueue entries: configurations a user already knows
MAX_CONDITIONS = 4  # parameters one parameter's `when` may name
MAX_WARM_START_STUDIES = 10
MIN_OBJECTIVES = 2
MAX_OBJECTIVES = 4
MAX_CONSTRAINTS = 8
MAX_FRONT = 50  # status.paretoFront entries
MAX_STEP = 1_000_000_000
MAX_SEED = 2**53  # exact in JSON and a CRD integer bound
MAX_METRIC_NAME_LENGTH = 128
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600
MAX_RETRIES = 100
MAX_WORKERS = problems.MAX_WORKERS
MAX_JOB_NAME_LENGTH = 63
MAX_PATTERN_LENGTH = problems.MAX_PATTERN_LENGTH
MAX_COUNT = 10**9
MAX_GENERATION = 2**63 - 1

AlgorithmName = Literal["auto", "random", "grid", "sobol", "tpe", "gp", "cmaes", "nsga2"]
EarlyStoppingName = Literal["median", "asha"]


def _value_kind(v: Any) -> str | None:
    # bool before int: True is an int in Python but a boolean in YAML and JSON.
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(v, types):
            return kind
    return None


Bound = Annotated[float, Field(ge=-MAX_BOUND, le=MAX_BOUND, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Generation = Annotated[int, Field(ge=0, le=MAX_GENERATION)]


def _param_name(name: str) -> str:
    # A validator rather than a schema pattern: a pattern on map keys becomes patternProperties,
    # which a CRD's structural schema cannot hold.
    if not re.fullmatch(PARAM_NAME_PATTERN, name):
        raise PydanticCustomError("param_name", "not a valid parameter name")
    return name


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PARAM_NAME_LENGTH),
    AfterValidator(_param_name),
]
"""A parameter name: it becomes part of an environment variable's name."""
ParamValue = Annotated[
    Annotated[bool, Tag("bool")]
    | Annotated[int, Field(ge=-MAX_BOUND, le=MAX_BOUND), Tag("int")]
    | Annotated[Bound, Tag("float")]
    | Annotated[str, StringConstraints(max_length=MAX_VALUE_LENGTH), Tag("str")],
    Discriminator(
        _value_kind,
        custom_error_type="value_type",
        custom_error_message="must be a string, a number or a boolean",
    ),
]
"""A categorical value or a trial's parameter value: string, number or boolean."""


class _Model(BaseModel):
    """Our own objects: camelCase aliases, snake_case attributes, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,  # they become the CRD's descriptions (kubectl explain)
    )


def _refuse(found: list[problems.Problem]) -> None:
    if found:
        raise problems.as_error(found)


MetricName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=r"^[A-Za-z_][A-Za-z0-9_./-]*$"
    ),
]
"""A metric's name as the trainer reports it."""
MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME_LENGTH)]
"""A metric's name as a map key (a pattern on map keys cannot go into a CRD's schema)."""
MetricValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e300, le=1e300)]


class ObjectiveSpec(_Model):
    """The metric the trials report, which way is better, and an optional goal that ends the
    study once a trial's value reaches it."""

    metric: MetricName
    """The metric's name as the trainer reports it (kubetune.sdk.report(step, name=value))."""
    direction: Literal["minimize", "maximize"]
    """Which way is better."""
    goal: Bound | None = None
    """The study Succeeds once a trial's value reaches this (at or below it to minimize)."""


class ParetoObjectiveSpec(ObjectiveSpec):
    """One of a study's several objectives: the metric, which way is better, an optional goal
    (the study Succeeds once one feasible trial meets every objective's goal) and an optional
    reference value for the hypervolume."""

    reference: Bound | None = None
    """The worst value that still counts toward status.hypervolume (above it to minimize, below
    it to maximize, a trial adds nothing); omitted, it comes from the first 10 Succeeded
    trials: their worst value, pushed out by a tenth of their range."""


class ConstraintSpec(_Model):
    """A limit a trial must keep to be feasible: its metric at most max, at least min."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.max) || has(self.min)",
                 "message": "give max, min or both"},
                {"rule": "!has(self.max) || !has(self.min) || self.min <= self.max",
                 "message": "min must not exceed max"},
            ]
        }
    )

    metric: MetricName
    """The metric the trainer reports in its final report, e.g. memory_gb."""
    max: Bound | None = None
    """The largest value a feasible trial may report."""
    min: Bound | None = None
    """The smallest value a feasible trial may report."""

    @model_validator(mode="after")
    def _consistent(self) -> ConstraintSpec:
        _refuse(problems.constraint_problems(self))
        return self


class ParamSpec(_Model):
    """One parameter: float or int in [low, high] (on a log scale, or on a lattice of step), or
    categorical with a list of values."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.low) || !has(self.high) || self.low < self.high",
                    "message": "low must be below high",
                },
                {
                    "rule": "!has(self.log) || !self.log || !has(self.low) || self.low > 0.0",
                    "message": "a log-scaled parameter needs low > 0",
                },
                {
                    "rule": "self.type == 'categorical' || (has(self.low) && has(self.high))",
                    "message": "a float or int parameter needs low and high",
                },
                {
                    # values holds mixed types, which CEL cannot see: its checks stay in pydantic.
                    "rule": "self.type != 'categorical' || (!has(self.low) && !has(self.high)"
                    " && !has(self.step) && !(has(self.log) && self.log))",
                    "message": "a categorical parameter takes no low, high, step or log",
                },
                {
                    "rule": "!has(self.step) || !has(self.log) || !self.log"
                    " || (self.type == 'int' && self.step == 1.0)",
                    "message": "step cannot be combined with log (except step 1 for int)",
                },
                {
                    "rule": "self.type != 'int' || ["
                    "has(self.low) ? self.low : 0.0, has(self.high) ? self.high : 0.0,"
                    " has(self.step) ? self.step : 1.0].all(x, x == double(int(x)))",
                    "message": "low, high and step of an int parameter must be whole numbers",
                },
                {
                    "rule": "self.type == 'categorical' || !has(self.low) || !has(self.high)"
                    " || (has(self.step) ? (self.high - self.low) / self.step"
                    " : (self.type == 'int' ? self.high - self.low : 0.0))"
                    f" <= {float(problems.MAX_LATTICE - 1)!r}",
                    "message": f"a parameter may have at most {problems.MAX_LATTICE:.0e} values:"
                    " use a larger step, narrow the range, or use type: float without step",
                },
            ]
        }
    )

    type: Literal["float", "int", "categorical"]
    """float, int or categorical."""
    low: Bound | None = None
    """The smallest value (float and int), below high."""
    high: Bound | None = None
    """The largest value (float and int), included."""
    log: bool = False
    """Sample on a log scale (needs low > 0; no step, except 1 for int)."""
    step: Annotated[float, Field(gt=0, le=MAX_BOUND, allow_inf_nan=False)] | None = None
    """Values are low + k * step; it must divide high - low."""
    values: (
        Annotated[list[ParamValue], Field(min_length=1, max_length=MAX_CATEGORICAL_VALUES)] | None
    ) = None
    """The choices of a categorical parameter: strings, numbers or booleans, each once."""
    when: (
        Annotated[
            dict[Name, Annotated[list[ParamValue],
                                 Field(min_length=1, max_length=MAX_CATEGORICAL_VALUES)]],
            Field(min_length=1, max_length=MAX_CONDITIONS),
        ]
        | None
    ) = None
    """Makes the parameter conditional: it is active only when each categorical parameter
    named here has one of the listed values, e.g. {optimizer: [sgd]}; an inactive parameter is
    left out of the trial's KUBETUNE_PARAMS and its variable is not set. (Its lists hold mixed
    types, which CEL cannot read: the operator checks it.)"""

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        _refuse(problems.param_problems(self))
        return self


class AlgorithmSpec(_Model):
    """The sampler, and the seed that makes its proposals reproducible."""

    name: AlgorithmName = "auto"
    """The sampler; auto picks one from the search space and the budget."""
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    """Seeds the sampler; without one the operator derives it from the study's UID."""


class EarlyStoppingSpec(_Model):
    """The rule that prunes hopeless Running trials from their learning curves."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxStep) || !has(self.minStep)"
                    " || self.minStep < self.maxStep",
                    "message": "minStep must be below maxStep",
                },
                {
                    "rule": "self.name != 'asha' || !has(self.minStep) || self.minStep >= 1",
                    "message": "minStep must be at least 1 for asha",
                },
            ]
        }
    )

    name: EarlyStoppingName
    """median: stop a trial whose best so far is worse than the median of the others at its
    step; asha: asynchronous successive halving over rungs minStep * reductionFactor**k."""
    metric: MetricName | None = None
    """The objective whose learning curve is judged: required with several objectives (one of
    their metrics); with one objective it may only name that one."""
    min_step: Annotated[int, Field(ge=0, le=MAX_STEP)] = 1
    """No trial is judged before it reports this step (for asha, the first rung)."""
    max_step: Annotated[int, Field(ge=1, le=MAX_STEP)] | None = None
    """The step at which a trial has finished its course; none is stopped there or later."""
    reduction_factor: Annotated[int, Field(ge=2, le=100)] = 3
    """asha: one in reductionFactor trials goes on at each rung."""
    min_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 5
    """median: how many other trials must have reached a step before a trial is judged there."""

    @model_validator(mode="after")
    def _consistent(self) -> EarlyStoppingSpec:
        _refuse(problems.early_stopping_problems(self))
        return self


class BudgetSpec(_Model):
    """How many trials, how many at once, how many may fail, and how long each may run."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.parallelism) || !has(self.maxTrials) "
                    "|| self.parallelism <= self.maxTrials",
                    "message": "parallelism must not exceed maxTrials",
                }
            ]
        }
    )

    max_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 20
    """Trials to finish (Succeeded, Failed and Pruned count) before the study Succeeds."""
    parallelism: Annotated[int, Field(ge=1, le=1000)] = 1
    """Trials Pending or Running at once."""
    max_failed_trials: Annotated[int, Field(ge=0, le=MAX_TRIALS)] = 5
    """The study Fails when more than this many trials have Failed (0: on the first)."""
    trial_timeout_seconds: Annotated[int, Field(ge=1, le=MAX_TIMEOUT_SECONDS)] | None = None
    """A trial pod's activeDeadlineSeconds: time Pending for a node does not count."""
    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 3
    """Re-runs of a trial, with the same params, whose pod was lost to its node (evicted,
    preempted, drained, its node gone, refused at admission), counted apart from failed
    trials; a failure of the training code is the trial's result and never re-run."""

    @model_validator(mode="after")
    def _consistent(self) -> BudgetSpec:
        _refuse(problems.budget_problems(self))
        return self


ContainerName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]
"""A container's name in the trial's pod template (a DNS label)."""


class TerminationMessageSource(_Model):
    """Read the metrics from the container's termination message when the trial ends: the
    trainer writes JSON ({"val_loss": 0.12}) or name=value lines to /dev/termination-log (the
    container's terminationMessagePath), and the kubelet puts it in the pod's status."""

    container: ContainerName | None = None
    """The container whose message holds the metrics; the template's first one when omitted."""


class LogSource(_Model):
    """Read the metrics from the container's log: every line that matches pattern is a
    report, the last one the trial's value."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.pattern.contains('(?P<value>')",
                    "message": "pattern needs a named group (?P<value>...) around the number,"
                    " e.g. val_loss=(?P<value>[0-9.e+-]+)",
                },
                {
                    # Either side is true for a valid expression; on one that RE2 cannot
                    # compile both fail to evaluate, which refuses the object with RE2's message.
                    "rule": "self.pattern.matches(self.pattern)"
                    " || !self.pattern.matches(self.pattern)",
                    "message": "pattern is not a valid regular expression (RE2 syntax: no"
                    " lookaround or backreferences)",
                },
            ]
        }
    )

    pattern: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_LENGTH)]
    """A regular expression (RE2 syntax, as Go and CEL read it) with a named group
    (?P<value>...) around the objective's number and optionally (?P<step>...) around the step
    it was measured at (needed by early stopping); each line of the log is matched on its own,
    e.g. "epoch (?P<step>[0-9]+) val_loss=(?P<value>[0-9.e+-]+)"."""
    container: ContainerName | None = None
    """The container whose log is read; the template's first one when omitted."""


class MetricsFromSpec(_Model):
    """Where the trials' metrics come from when the training code does not call
    kubetune.sdk.report: exactly one of terminationMessage and log."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.terminationMessage) != has(self.log)",
                    "message": "give exactly one of terminationMessage and log",
                }
            ]
        }
    )

    termination_message: TerminationMessageSource | None = None
    """The container's termination message, read when the trial ends."""
    log: LogSource | None = None
    """The container's log, read through the pods/log API with a pattern."""

    @model_validator(mode="after")
    def _consistent(self) -> MetricsFromSpec:
        _refuse(problems.metrics_from_problems(self))
        return self


StudyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
]
"""A TuningStudy's name (a DNS subdomain)."""


class WarmStartSpec(_Model):
    """Earlier studies whose finished trials the sampler learns from before this study's own."""

    studies: Annotated[list[StudyName], Field(min_length=1, max_length=MAX_WARM_START_STUDIES)]
    """TuningStudies in this namespace: their Succeeded trials that fit this search space, with
    the same objective metric and direction, carry over (at most 200, the best first)."""


_IMMUTABLE: JsonDict = {
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]
}


class TrialSpec(_Model):
    """How one trial runs: in one pod, or as a group of pods that train together."""

    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    """Pods per trial. Above 1 each trial is an Indexed Job of that many pods, reachable by
    name through a headless Service, each told MASTER_ADDR (worker 0), MASTER_PORT,
    WORLD_SIZE and RANK as torch.distributed and torchrun expect; worker 0 reports the
    metrics, and one worker's failure fails the trial."""
    port: Annotated[int, Field(ge=1024, le=65535)] = 29500
    """The port worker 0 listens on for the others (MASTER_PORT)."""




class StudySpec(_Model):
    """What to tune: the objective, the search space, the algorithm, early stopping, the
    budget, and the Job template of one trial."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.algorithm) || !has(self.algorithm.name)"
                    " || self.algorithm.name != 'grid' || self.searchSpace.all(n,"
                    " self.searchSpace[n].type != 'float' || has(self.searchSpace[n].step))",
                    "message": "grid search needs a step on every float parameter",
                    "fieldPath": ".searchSpace",
                },
                {
                    "rule": f"self.searchSpace.all(n, size(n) <= {MAX_PARAM_NAME_LENGTH}"
                    f" && n.matches('{PARAM_NAME_PATTERN}'))",
                    "message": "a parameter name is a letter or _, then letters, digits, _, ."
                    f" or -, at most {MAX_PARAM_NAME_LENGTH} characters: it becomes part of a"
                    " variable name",
                    "fieldPath": ".searchSpace",
                },
                {
                    "rule": "has(self.jobTemplate) != has(self.trialTemplate)",
                    "message": "give exactly one of jobTemplate (a Job per trial) and"
                    " trialTemplate (another resource per trial, e.g. a JobSet): keep the one"
                    " that describes your trial",
                },
                {
                    "rule": "has(self.objective) != has(self.objectives)",
                    "message": "give exactly one of objective (one metric) and objectives (2 to"
                    f" {MAX_OBJECTIVES} metrics, for a Pareto front): keep objective for one"
                    " metric, objectives for several",
                },
                {
                    "rule": "!has(self.objectives) || self.objectives.all(a,"
                    " self.objectives.exists_one(b, b.metric == a.metric))",
                    "message": "each objective needs its own metric: remove the repeated one",
                    "fieldPath": ".objectives",
                },
                {
                    "rule": "!has(self.objectives) || !has(self.earlyStopping)"
                    " || (has(self.earlyStopping.metric) && self.objectives.exists(o,"
                    " o.metric == self.earlyStopping.metric))",
                    "message": "with several objectives, earlyStopping.metric must name the one"
                    " whose learning curve is judged",
                    "fieldPath": ".earlyStopping",
                },
                {
                    "rule": "self.searchSpace.all(a, self.searchSpace.all(b, a == b"
                    " || a.upperAscii().replace('.', '_').replace('-', '_')"
                    " != b.upperAscii().replace('.', '_').replace('-', '_')))",
                    "message": "two parameter names become the same KUBETUNE_PARAM_ variable"
                    " (upper-cased, . and - as _): rename one of them",
                    "fieldPath": ".searchSpace",
                },
            ]
        }
    )

    objective: ObjectiveSpec | None = Field(default=None, json_schema_extra=_IMMUTABLE)
    """What to optimise: one metric (or give objectives instead); immutable."""
    objectives: (
        Annotated[list[ParetoObjectiveSpec],
                  Field(min_length=MIN_OBJECTIVES, max_length=MAX_OBJECTIVES)] | None
    ) = Field(default=None, json_schema_extra=_IMMUTABLE)
    """Several metrics to optimise at once (2 to 4), instead of objective: the study finds the
    Pareto front, the trials no other trial beats on every metric; immutable."""
    constraints: Annotated[list[ConstraintSpec], Field(max_length=MAX_CONSTRAINTS)] = Field(
        default=[], json_schema_extra=_IMMUTABLE)
    """Limits on metrics of the final report: a trial that breaks one is Succeeded with reason
    Infeasible, learnt from but never best nor on the front; immutable."""
    search_space: Annotated[dict[Name, ParamSpec], Field(min_length=1, max_length=MAX_PARAMS)] = (
        Field(json_schema_extra=_IMMUTABLE)
    )
    """Parameter name -> parameter; each reaches the trial as KUBETUNE_PARAM_<NAME>; immutable."""
    algorithm: AlgorithmSpec = AlgorithmSpec()
    """How new trials are proposed."""
    early_stopping: EarlyStoppingSpec | None = None
    """How hopeless trials are stopped; none when omitted."""
    budget: BudgetSpec = BudgetSpec()
    """How many trials, how many at once, how many may fail, how long each may run."""
    suspend: bool = False
    """While true no new trial starts; running ones go on."""
    metrics_from: MetricsFromSpec | None = Field(default=None, json_schema_extra=_IMMUTABLE)
    """Where metrics come from without kubetune.sdk.report: the termination message or the
    log; omitted, the trainer reports with the SDK; immutable."""
    warm_start: WarmStartSpec | None = None
    """Earlier studies to learn from: their trials shape the first proposals, without counting
    toward this study's budget or leaderboard."""
    enqueue: Annotated[
        list[Annotated[dict[Name, ParamValue], Field(max_length=MAX_PARAMS)]],
        Field(max_length=MAX_ENQUEUED),
    ] = []
    """Configurations to run first: entry i sets params of trial i, the rest are proposed."""
    trial: TrialSpec = Field(default=TrialSpec(), json_schema_extra=_IMMUTABLE)
    """How one trial runs: its number of workers (pods that train together); immutable."""
    job_template: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """A batch/v1 JobTemplateSpec for one trial, as in a CronJob (no ttlSecondsAfterFinished);
    or give trialTemplate instead."""
    trial_template: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Another resource than a Job for one trial, e.g. a JobSet: apiVersion, kind, metadata and
    spec as in its own manifest; for a kind kubetune does not know also resource (its plural),
    successCondition and failureCondition (condition types), and metricsPod.matchLabels (the
    pod that reports). Instead of jobTemplate; the operator must watch the kind (--workload)."""

    @field_validator("job_template")
    @classmethod
    def _keeps_jobs(cls, template: dict[str, Any] | None) -> dict[str, Any] | None:
        if template is not None:
            _refuse(problems.job_template_problems(template))
        return template

    @field_validator("trial_template")
    @classmethod
    def _names_its_kind(cls, template: dict[str, Any] | None) -> dict[str, Any] | None:
        if template is not None:
            _refuse(problems.trial_template_problems(template))
        return template

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        _refuse(problems.study_problems(self))
        return self


class _StatusModel(_Model):
    # Status comes back from the API server as JSON, so timestamps arrive as strings.
    model_config = ConfigDict(strict=False)


class Condition(_StatusModel):
    """A metav1.Condition. Types: Ready, Reconciling, Stalled, Suspended, Succeeded, Failed,
    as kstatus, kubectl wait, Helm, Flux and Argo CD read them."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)]
    """The condition's type, e.g. Ready or Succeeded; one entry per type."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds: True, False or Unknown."""
    observed_generation: Generation | None = None
    """The metadata.generation of the spec this condition was computed from."""
    last_transition_time: datetime
    """When status last changed (a new reason or message alone does not move it)."""
    reason: Annotated[
        str,
        StringConstraints(
            min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
        ),
    ]
    """Why, in one CamelCase word, e.g. MaxTrialsReached or TooManyFailedTrials."""
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    """Why, in a sentence a person reads."""


class TrialCounts(_StatusModel):
    """How many trials are in each state; total counts them all."""

    pending: Count = 0
    """Created, waiting for a node or to start."""
    running: Count = 0
    """Running now."""
    succeeded: Count = 0
    """Ended with a valid objective value."""
    failed: Count = 0
    """Ended without one (exit code, timeout, missing or bad metric)."""
    pruned: Count = 0
    """Stopped early by the early stopping rule."""
    stopped: Count = 0
    """Still running when the study ended; they do not count toward maxTrials."""
    lost: Count = 0
    """Whose Job was deleted, or whose result could not be verified; not counted."""
    retries: Count = 0
    """Pods re-run because their node lost them (not failures of the training code)."""
    infeasible: Count = 0
    """Succeeded trials that broke a constraint (among succeeded)."""
    total: Count = 0
    """All trials ever created."""


class TrialSummary(_StatusModel):
    """One trial as the status shows it: bestTrial, each leaderboard and paretoFront entry."""

    number: Count
    """The trial's number (its Job's kubetune.dev/trial label)."""
    value: Annotated[float, Field(allow_inf_nan=False, ge=-1e300, le=1e300)] | None = None
    """Its objective value (one objective)."""
    values: Annotated[dict[MetricKey, MetricValue], Field(max_length=MAX_OBJECTIVES)] | None = None
    """Its objectives' values (several objectives)."""
    rank: Count | None = None
    """Several objectives: its non-dominated rank (0: on the Pareto front)."""
    params: Annotated[dict[Name, ParamValue], Field(max_length=MAX_PARAMS)] = {}
    """Its parameters, name -> value."""
    job: Annotated[str, StringConstraints(max_length=MAX_JOB_NAME_LENGTH)] | None = None
    """The name of the trial's Job, which holds its recorded result."""


class WarmStartStatus(_StatusModel):
    """What spec.warmStart carried over."""

    trials: Count = 0
    """Trials of the earlier studies the sampler learns from."""
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    """Per earlier study, how many of its trials carried over, or why none did."""


StudyPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed", "Invalid"]


class StudyStatus(_StatusModel):
    """A TuningStudy's status, written by the operator: bounded whatever the number of
    trials."""

    observed_generation: Generation | None = 0
    """The metadata.generation the operator last acted on; 0 until it has acted, so that
    kstatus (helm --wait, Flux) reads a new study as InProgress, not Current."""
    phase: StudyPhase | None = "Pending"
    """What the study is doing in one word: Pending (no trial started yet), Running,
    Suspended, Succeeded, Failed or Invalid (its spec cannot proceed; see the Stalled
    condition)."""
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(
        default=[],
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """The study's conditions, one per type (see Condition)."""
    trials: TrialCounts = TrialCounts()
    """How many trials are in each state."""
    progress: Annotated[str, StringConstraints(max_length=32)] | None = None
    """Trials done (Succeeded, Failed and Pruned) over spec.budget.maxTrials, e.g. 7/20: the
    TRIALS column of kubectl get."""
    next_trial: Count = 0
    """The next trial's number: numbers are never reused."""
    best_trial: TrialSummary | None = None
    """The best Succeeded trial so far."""
    best_value: Annotated[str, StringConstraints(max_length=32)] | None = None
    """The best value to 6 significant digits: the BEST column of kubectl get."""
    leaderboard: Annotated[list[TrialSummary], Field(max_length=10)] = []
    """The best Succeeded trials, best first (at most 10); with several objectives ordered by
    non-dominated rank, then crowding distance."""
    front_size: Count | None = None
    """Several objectives: how many feasible Succeeded trials no other one dominates (the
    FRONT column)."""
    pareto_front: Annotated[list[TrialSummary], Field(max_length=MAX_FRONT)] | None = None
    """Several objectives: the non-dominated trials, at most 50 (thinned by crowding distance,
    the extremes kept), by the first objective, best first."""
    hypervolume: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e300)] | None = None
    """Several objectives: the volume the front dominates up to referencePoint (larger is
    better); it only grows as trials finish."""
    reference_point: Annotated[dict[MetricKey, MetricValue],
                               Field(max_length=MAX_OBJECTIVES)] | None = None
    """Several objectives: the reference of the hypervolume, per metric."""
    warm_start: WarmStartStatus | None = None
    """What spec.warmStart carried over from earlier studies; absent without one."""
    start_time: datetime | None = None
    """When the operator first acted on the study."""
    completion_time: datetime | None = None
    """When the study Succeeded or Failed; null while it runs."""


class SpecError(ValueError):
    """An invalid TuningStudy spec. The message has one line per problem, each naming the
    field, the value and the fix; ``problems`` holds those lines."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.problems = tuple(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its lines, not its message, when it crosses a process (kube.sampling).
        return (SpecError, (list(self.problems),))


def parse_spec(obj: Mapping[str, Any] | StudySpec) -> StudySpec:
    """Validate a TuningStudy ``.spec`` (camelCase dict as in the manifest, or snake_case, or a
    ``StudySpec``). Pure. Raises ``SpecError`` listing every problem found."""
    if isinstance(obj, StudySpec):
        return obj
    if not isinstance(obj, Mapping):
        raise SpecError(
            [f"spec: must be a mapping (got {problems.show(obj)}); pass the TuningStudy's .spec"]
        )
    if "spec" in obj and ("kind" in obj or "apiVersion" in obj):
        raise SpecError(
            ["spec: got a whole TuningStudy object; pass its .spec (obj['spec']) instead"]
        )
    try:
        return StudySpec.model_validate(dict(obj))
    except ValidationError as err:
        raise SpecError(problems.describe(err, StudySpec)) from None


def space_of(spec: StudySpec) -> Space:
    """The unit-cube search space of a study, axes in ``searchSpace`` order. Pure."""
    return Space.from_search_space(spec.search_space)


def template_of(spec: StudySpec) -> dict[str, Any]:
    """What one trial is made from: jobTemplate, or trialTemplate. Pure."""
    return spec.job_template if spec.job_template is not None else spec.trial_template or {}


def pod_template_of(spec: StudySpec) -> Mapping[str, Any]:
    """The trial's (first) pod template: the Job's, or the first inside trialTemplate. Pure."""
    if spec.job_template is not None:
        template = (spec.job_template.get("spec") or {}).get("template")
        return template if isinstance(template, Mapping) else {}
    return next(workloads.pod_templates(spec.trial_template or {}), {})


def watched(spec: StudySpec) -> ObjectiveSpec:
    """The objective a trial's curve and early stopping follow: the one objective, or the one
    earlyStopping.metric names, or the first of several."""
    if spec.objective is not None:
        return spec.objective
    assert spec.objectives  # exactly one of the two: the model refuses neither
    named = spec.early_stopping.metric if spec.early_stopping else None
    return next((o for o in spec.objectives if o.metric == named), spec.objectives[0])


def minimize(spec: StudySpec) -> bool:
    """Whether lower values of the watched objective (``watched``) are better."""
    return watched(spec).direction == "minimize"


def objectives_of(spec: StudySpec) -> tuple[Objective, ...]:
    """Every objective, as the samplers and the ranking read them."""
    given: Sequence[ObjectiveSpec] = spec.objectives or [watched(spec)]
    return tuple(Objective(o.metric, o.direction == "minimize") for o in given)


def constraints_of(spec: StudySpec) -> tuple[Constraint, ...]:
    """The constraints, as ``core.objectives`` reads them."""
    return tuple(Constraint(c.metric, c.max, c.min) for c in spec.constraints)


def reported(spec: StudySpec) -> tuple[str, ...]:
    """The metrics a trial's final report must hold: objectives, then constraints, each once."""
    names = [o.metric for o in objectives_of(spec)] + [c.metric for c in spec.constraints]
    return tuple(dict.fromkeys(names))
