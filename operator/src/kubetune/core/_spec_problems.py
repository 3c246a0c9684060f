"""The rules of a TuningStudy spec that a schema cannot state, and the wording of every problem.

Pure functions. Each ``*_problems`` function takes a model that passed its field checks and
returns the ``Problem`` values it finds; ``describe`` turns a pydantic ``ValidationError`` (field
checks and these rules alike) into lines ``spec.<path>: <what is wrong> (got <value>); <fix>``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from kubetune.core.space import CategoricalParam, Space, env_var_name
from kubetune.core.workloads import KNOWN, kind_of, pod_templates

__all__ = [
    "MAX_BOUND",
    "MAX_LATTICE",
    "MAX_PARAMS",
    "MAX_PARAM_NAME_LENGTH",
    "PARAM_NAME_PATTERN",
    "Problem",
    "as_error",
    "budget_problems",
    "constraint_problems",
    "describe",
    "early_stopping_problems",
    "job_template_problems",
    "metrics_from_problems",
    "param_problems",
    "show",
    "study_problems",
    "trial_template_problems",
]

MAX_PARAMS = 64
MAX_PARAM_NAME_LENGTH = 63
MAX_PATTERN_LENGTH = 1024
MAX_WORKERS = 64
# Job fields that trial.workers sets on a trial of several workers, and pod fields the Job
# controller and the operator set for its workers' names.
_WORKER_JOB_FIELDS = ("completions", "parallelism", "completionMode", "backoffLimitPerIndex",
                      "maxFailedIndexes", "successPolicy")
_WORKER_POD_FIELDS = ("hostname", "subdomain")
# The named groups a metricsFrom.log pattern may have: the number, and the step it belongs to.
PATTERN_GROUPS = ("value", "step")
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
# |low|, |high| <= 1e15 keeps every whole number exact as a double (2**53 ~ 9e15).
MAX_BOUND = 1e15
# More values than this and a value's cell of the unit interval gets too thin to find again.
MAX_LATTICE = 10**12
# A step this small against the bounds cannot be told apart in double precision.
MIN_RELATIVE_STEP = 1e-9
# The tolerance for "step divides high - low" with floats (0.3 / 0.1 = 2.9999999999999996).
STEP_TOLERANCE = 1e-9

_PARAM_NAME_FIX = (
    f"use at most {MAX_PARAM_NAME_LENGTH} letters, digits, '_', '.' or '-', starting with a "
    "letter or '_', so that it can become an environment variable name"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, at ``path`` below the model that found it."""

    path: tuple[str | int, ...]
    what: str
    got: str | None
    fix: str


def exact(number: float) -> str:
    """A limit as a user types it back: every digit, never rounded (2**53: 9007199254740992)."""
    if isinstance(number, float) and number.is_integer() and abs(number) <= 2**53:
        return str(int(number))
    return repr(number)


def show(value: Any, limit: int = 80) -> str:
    """A value as a message shows it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_error(found: list[Problem]) -> PydanticCustomError:
    """An error a model validator raises; ``describe`` unpacks its problems again."""
    text = "; ".join(_line(p.path, p.what, p.got, p.fix, prefix="") for p in found)
    return PydanticCustomError("spec_problem", "{text}", {"text": text, "problems": found})


def param_problems(p: Any) -> list[Problem]:
    """What is wrong with one ``searchSpace`` entry (a ParamSpec)."""
    if p.type == "categorical":
        return _categorical_problems(p)
    out = [
        Problem((f,), f"only categorical parameters take {f}", show(getattr(p, f)), f"remove {f}")
        for f in ("values",)
        if p.values is not None
    ]
    for f in ("low", "high"):
        if getattr(p, f) is None:
            out.append(Problem((f,), f"is required for a {p.type} parameter", None, f"add {f}"))
    if p.type == "int":
        for f in ("low", "high", "step"):
            x = getattr(p, f)
            if x is not None and not float(x).is_integer():
                out.append(
                    Problem(
                        (f,),
                        "must be a whole number for an int parameter",
                        show(x),
                        "use a whole number, or type: float",
                    )
                )
    if out:
        return out
    low, high, step = p.low, p.high, p.step
    if low >= high:
        return [
            Problem(
                ("low",),
                "must be below high",
                f"low={low!r}, high={high!r}",
                "make low the smaller bound",
            )
        ]
    if p.log and low <= 0:
        out.append(
            Problem(
                ("low",),
                "must be above 0 on a log scale",
                show(low),
                "raise low above 0, or drop log",
            )
        )
    if p.log and step is not None and not (p.type == "int" and step == 1):
        out.append(
            Problem(("step",), "cannot be combined with log", show(step), "drop step, or drop log")
        )
    if step is not None:
        out += _step_problems(p.type, low, high, step)
    elif p.type == "int" and high - low + 1 > MAX_LATTICE:
        out.append(
            Problem(
                ("high",),
                f"gives more than {MAX_LATTICE:.0e} values",
                f"low={low!r}, high={high!r}",
                "narrow the range, or use type: float",
            )
        )
    return out


def _step_problems(kind: str, low: float, high: float, step: float) -> list[Problem]:
    k = (high - low) / step
    if kind == "int":
        divides = (high - low) % step == 0
    else:
        divides = abs(k - round(k)) <= STEP_TOLERANCE * max(1.0, abs(k))
    got = f"step={step!r}, high - low={high - low!r}"
    if not divides or round(k) < 1:
        return [
            Problem(
                ("step",),
                "does not divide high - low",
                got,
                "pick a step that divides the range, or move high onto low + n * step",
            )
        ]
    if k + 1 > MAX_LATTICE:
        return [
            Problem(
                ("step",),
                f"gives more than {MAX_LATTICE:.0e} values",
                got,
                "use a larger step, or drop step",
            )
        ]
    if kind == "float" and step < MIN_RELATIVE_STEP * max(abs(low), abs(high)):
        return [
            Problem(
                ("step",),
                "is too small to tell values apart at this magnitude",
                f"step={step!r}, bounds up to {max(abs(low), abs(high))!r}",
                f"use a step of at least {MIN_RELATIVE_STEP:g} x the largest bound",
            )
        ]
    return []


def _categorical_problems(p: Any) -> list[Problem]:
    out = [
        Problem(
            (f,),
            "is not used by a categorical parameter",
            show(getattr(p, f)),
            f"remove {f}, or set type: float or int",
        )
        for f in ("low", "high", "step")
        if getattr(p, f) is not None
    ]
    if p.log:
        out.append(
            Problem(("log",), "is not used by a categorical parameter", "True", "remove log")
        )
    if p.values is None:
        out.append(
            Problem(
                ("values",),
                "is required for a categorical parameter",
                None,
                "list the values, e.g. values: [adam, sgd]",
            )
        )
        return out
    seen: dict[tuple[str, Any], int] = {}
    for i, v in enumerate(p.values):
        # 1 and 1.0 are one value to a trainer reading its arguments; true and 1 are not.
        key = (
            ("bool", v)
            if isinstance(v, bool)
            else ("str", v)
            if isinstance(v, str)
            else ("number", float(v))
        )
        if key in seen:
            out.append(
                Problem(
                    ("values", i), f"repeats values[{seen[key]}]", show(v), "list each value once"
                )
            )
        else:
            seen[key] = i
    return out


def early_stopping_problems(e: Any) -> list[Problem]:
    """What is wrong with ``earlyStopping`` as a whole."""
    out = []
    if e.name == "asha" and e.min_step < 1:
        out.append(
            Problem(
                ("minStep",),
                "must be at least 1 for asha",
                show(e.min_step),
                "set it to the first step at which trials can be compared, e.g. 1",
            )
        )
    if e.max_step is not None and e.min_step >= e.max_step:
        out.append(
            Problem(
                ("minStep",),
                "must be below maxStep",
                f"minStep={e.min_step}, maxStep={e.max_step}",
                "lower minStep or raise maxStep",
            )
        )
    return out


def constraint_problems(c: Any) -> list[Problem]:
    """What is wrong with one constraint: no bound, or bounds that no value can keep."""
    if c.max is None and c.min is None:
        return [Problem((), "has neither max nor min", None,
                        f"give max (e.g. max: 8 for {c.metric} <= 8), min, or both")]
    if c.max is not None and c.min is not None and c.min > c.max:
        return [Problem(("min",), "exceeds max, so no trial could keep it",
                        f"min={c.min:g}, max={c.max:g}", "lower min or raise max")]
    return []


def _objective_problems(s: Any) -> list[Problem]:
    """One objective or several, never both or neither; several need distinct metrics, an
    early-stopping metric among them, and samplers and sources that can serve them."""
    if (s.objective is None) == (s.objectives is None):
        what = "both are given" if s.objective is not None else "neither is given"
        return [Problem(("objective",), f"give exactly one of objective and objectives: {what}",
                        None, "keep objective for one metric, or objectives (2 to 4 metrics) "
                        "for a Pareto front")]
    out = []
    stop = s.early_stopping
    if s.objective is not None:
        if stop is not None and stop.metric not in (None, s.objective.metric):
            out.append(Problem(("earlyStopping", "metric"), "names a metric that is not the "
                               "objective", show(stop.metric),
                               f"leave it out, or set it to {s.objective.metric!r}"))
        if s.algorithm.name == "nsga2":
            out.append(Problem(("algorithm", "name"), "is for studies with several objectives",
                               show("nsga2"), "use auto, gp, tpe or cmaes for one objective"))
        return out
    metrics = [o.metric for o in s.objectives]
    for i, m in enumerate(metrics):
        if m in metrics[:i]:
            out.append(Problem(("objectives", i, "metric"), "repeats an earlier objective's "
                               "metric", show(m), "give each objective its own metric"))
    if stop is not None and stop.metric not in metrics:
        got = "nothing" if stop.metric is None else show(stop.metric)
        out.append(Problem(("earlyStopping", "metric"), "must name the objective whose learning "
                           "curve is judged when there are several objectives", got,
                           f"set it to one of {metrics}, or remove earlyStopping"))
    if s.algorithm.name == "cmaes":
        out.append(Problem(("algorithm", "name"), "takes one objective", show("cmaes"),
                           "use auto, gp, tpe or nsga2 for several objectives"))
    if s.warm_start is not None:
        out.append(Problem(("warmStart",), "carries over trials of one objective only", None,
                           "remove warmStart, or tune one objective"))
    return out


def _log_source_problems(s: Any) -> list[Problem]:
    """metricsFrom.log reads one number per line: the watched objective, nothing else."""
    source = s.metrics_from
    if source is None or source.log is None:
        return []
    if s.objectives is not None or s.constraints:
        return [Problem(("metricsFrom", "log"), "reads one metric from the log, and this "
                        "study needs several (objectives and constraints)", None,
                        "use metricsFrom.terminationMessage, or kubetune.sdk.report")]
    return []


def _workers_problems(s: Any) -> list[Problem]:
    """A template that sets what trial.workers decides for a trial of several pods."""
    workers = s.trial.workers
    if workers <= 1:
        return []
    if s.job_template is None:
        return [Problem(("trial", "workers"), "makes Job trials of several pods; a trialTemplate "
                        "sets its own pods", show(workers),
                        "remove it, and set the workers in the trialTemplate's own spec")]
    job = s.job_template.get("spec")
    job = job if isinstance(job, Mapping) else {}
    pod = job.get("template")
    pod_spec = pod.get("spec") if isinstance(pod, Mapping) else None
    pod_spec = pod_spec if isinstance(pod_spec, Mapping) else {}
    out = [Problem(("jobTemplate", "spec", key), f"is set by trial.workers ({workers} pods "
                   "per trial, one Indexed Job)", show(job[key]), "remove it")
           for key in _WORKER_JOB_FIELDS if key in job]
    out += [Problem(("jobTemplate", "spec", "template", "spec", key), "is set for the workers "
                    "of a trial, so that worker 0 is reachable by name", show(pod_spec[key]),
                    "remove it")
            for key in _WORKER_POD_FIELDS if key in pod_spec]
    restart = pod_spec.get("restartPolicy", "Never")
    if restart != "Never":
        out.append(Problem(("jobTemplate", "spec", "template", "spec", "restartPolicy"),
                           "must be Never with several workers: a worker restarted on its own "
                           "cannot rejoin the others", show(restart), "remove it"))
    return out


def metrics_from_problems(m: Any) -> list[Problem]:
    """What is wrong with ``metricsFrom``: a log pattern Python cannot compile, or without
    the group that holds the number, or not exactly one source."""
    if (m.log is None) == (m.termination_message is None):
        return [Problem((), "needs exactly one of terminationMessage and log",
                        "both" if m.log is not None else "neither",
                        "keep the one the trainer writes to (or remove metricsFrom to report "
                        "with kubetune.sdk)")]
    if m.log is None:
        return []
    try:
        compiled = re.compile(m.log.pattern)
    except re.error as e:
        return [Problem(("log", "pattern"), f"is not a valid regular expression ({e})",
                        show(m.log.pattern), "fix the expression, e.g. "
                        "val_loss=(?P<value>[0-9.e+-]+)")]
    out = []
    if "value" not in compiled.groupindex:
        out.append(Problem(("log", "pattern"), "has no named group (?P<value>...)",
                           show(m.log.pattern), "put (?P<value>...) around the number, e.g. "
                           "val_loss=(?P<value>[0-9.e+-]+)"))
    extra = sorted(set(compiled.groupindex) - set(PATTERN_GROUPS))
    if extra:
        out.append(Problem(("log", "pattern"), f"has named groups {extra} that mean nothing "
                           "here", show(m.log.pattern), "name only value and step, and make "
                           "other groups unnamed: (...) or (?:...)"))
    return out


def _metrics_from_study_problems(s: Any) -> list[Problem]:
    """metricsFrom against the rest of the spec: the container it names, and early stopping,
    which needs values while a trial runs, at known steps."""
    source = s.metrics_from
    if source is None:
        return []
    kind = "log" if source.log is not None else "terminationMessage"
    chosen = source.log if source.log is not None else source.termination_message
    out = []
    template = s.job_template if s.job_template is not None else s.trial_template or {}
    pod = next(pod_templates(template), {}).get("spec") or {}
    containers = [c.get("name") for c in pod.get("containers") or [] if isinstance(c, Mapping)]
    if chosen.container is not None and containers and chosen.container not in containers:
        out.append(Problem(("metricsFrom", kind, "container"),
                           f"names no container of the trial's pod (it has {containers})",
                           show(chosen.container), "name one of those, or leave it out for "
                           "the first"))
    if s.early_stopping is not None:
        if kind == "terminationMessage":
            out.append(Problem(("metricsFrom", kind), "is read only when a trial ends, and "
                               "early stopping needs values while it runs", None,
                               "use metricsFrom.log with a (?P<step>...) group, or "
                               "kubetune.sdk.report, or remove earlyStopping"))
        elif "(?P<step>" not in source.log.pattern:
            out.append(Problem(("metricsFrom", "log", "pattern"), "has no named group "
                               "(?P<step>...), which early stopping needs to compare trials "
                               "at the same step", show(source.log.pattern),
                               "capture the step too, e.g. "
                               "epoch=(?P<step>[0-9]+) val_loss=(?P<value>[0-9.e+-]+)"))
    return out


def budget_problems(b: Any) -> list[Problem]:
    """What is wrong with ``budget`` as a whole."""
    if b.parallelism > b.max_trials:
        return [
            Problem(
                ("parallelism",),
                "must not exceed maxTrials",
                f"parallelism={b.parallelism}, maxTrials={b.max_trials}",
                "lower parallelism or raise maxTrials",
            )
        ]
    return []


def study_problems(s: Any) -> list[Problem]:
    """What is wrong across a whole spec: variable names that collide, grid over a continuum."""
    out = []
    owner: dict[str, str] = {}
    for name in s.search_space:
        var = env_var_name(name)
        if var in owner:
            out.append(
                Problem(
                    ("searchSpace", name),
                    f"becomes the same variable {var} as {owner[var]!r}",
                    show(name),
                    "rename one of them",
                )
            )
        else:
            owner[var] = name
    out += _objective_problems(s)
    out += _when_problems(s)
    out += _enqueue_problems(s)
    out += _metrics_from_study_problems(s)
    out += _log_source_problems(s)
    out += _workers_problems(s)
    if (s.job_template is None) == (s.trial_template is None):
        which = "neither" if s.job_template is None else "both"
        out.append(Problem(("jobTemplate",), "is required, or trialTemplate instead: give "
                           f"exactly one of them (got {which})", None,
                           "keep the one that describes your trial: a Job (jobTemplate) or "
                           "another resource such as a JobSet (trialTemplate)"))
    if s.algorithm.name == "grid":
        for name, p in s.search_space.items():
            if p.type == "float" and p.step is None:
                out.append(
                    Problem(
                        ("searchSpace", name, "step"),
                        "is required by grid search on a float parameter",
                        None,
                        "add a step, or pick another algorithm",
                    )
                )
    return out


def _when_problems(s: Any) -> list[Problem]:
    """Conditions that cannot hold: a parent that is not another categorical parameter, a
    value it cannot take, parameters that are each other's condition."""
    out = []
    space = s.search_space
    for name, p in space.items():
        for parent, values in (p.when or {}).items():
            where = ("searchSpace", name, "when", parent)
            other = space.get(parent)
            if other is None or parent == name:
                out.append(Problem(where, "names no other parameter of searchSpace", show(parent),
                                   "name the parameter this one depends on, e.g. optimizer"))
            elif other.type != "categorical":
                out.append(Problem(where, f"names a {other.type} parameter; a condition needs a "
                                   "categorical one", show(parent),
                                   f"make {parent} categorical (values: [...])"))
            else:
                allowed = CategoricalParam(parent, tuple(other.values or ()))
                for i, v in enumerate(values):
                    if not allowed.contains(v):
                        out.append(Problem((*where, i), f"is not one of {parent}'s values "
                                           f"{list(other.values or [])[:10]}", show(v),
                                           "list values the parameter can take"))
    if not out:
        try:
            Space.from_search_space(space)
        except ValueError as e:
            out.append(Problem(("searchSpace",), str(e).split(": ", 1)[-1], None,
                               "remove one of the conditions so that none depends on itself"))
    return out


def _enqueue_problems(s: Any) -> list[Problem]:
    """Each enqueued configuration names only parameters of the space, each with a value the
    parameter admits (on its step, in its bounds, one of its values)."""
    if not s.enqueue:
        return []
    out = []
    try:
        space = Space.from_search_space(s.search_space)
    except ValueError:
        return []  # conditions that cannot hold: _when_problems names them
    params = {p.name: p for p in space.params}
    for i, entry in enumerate(s.enqueue):
        # A parameter the entry sets, whose parent the entry sets to a value that turns it off.
        inactive: dict[str, None] = {}
        for c in space.conditions:
            child, parent = space.params[c.param], space.params[c.parent]
            assert isinstance(parent, CategoricalParam)  # conditions name categoricals only
            chosen = entry.get(parent.name)
            if child.name in entry and parent.contains(chosen) and \
                    parent.index(chosen) not in c.allowed:
                inactive[child.name] = None
        out += [Problem(("enqueue", i, name), "is inactive under this entry's own choices "
                        "(see its when)", show(entry[name]),
                        "leave it out, or change the parameter its when names")
                for name in inactive]
        for name, value in entry.items():
            param = params.get(name)
            if param is None:
                close = difflib.get_close_matches(name, list(params), n=1)
                out.append(Problem(
                    ("enqueue", i, name), "is not a parameter of searchSpace", show(name),
                    f"did you mean {close[0]!r}?" if close else
                    "use one of " + ", ".join(show(n, 40) for n in list(params)[:10])))
            elif not param.contains(value):
                out.append(Problem(
                    ("enqueue", i, name), f"is not a value {name} can take ({_domain(param)})",
                    show(value), "pick a value inside the parameter's range"))
    return out


def _domain(param: Any) -> str:
    if param.kind == "categorical":
        return "one of " + ", ".join(show(c, 20) for c in param.values[:10]) + \
            (", ..." if len(param.values) > 10 else "")
    text = f"{exact(param.low)} to {exact(param.high)}"
    step = getattr(param, "step", None)
    if param.kind == "int":
        text = "an integer from " + text
    if step not in (None, 1):
        text += f", on steps of {exact(step)} from {exact(param.low)}"
    return text


def job_template_problems(t: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with ``jobTemplate`` (a batch/v1 JobTemplateSpec) at the level we read;
    paths are below ``jobTemplate``.

    The rest is left to the API server's dry run of the first trial Job.
    """
    out = [
        Problem(
            (key,),
            "is not a field of a JobTemplateSpec",
            show(t[key]),
            "put the Job's own fields under jobTemplate.spec (metadata and spec only)",
        )
        for key in t
        if key not in ("metadata", "spec")
    ]
    spec = t.get("spec")
    if not isinstance(spec, Mapping):
        missing = Problem(
            ("spec",),
            "must be a Job spec mapping",
            None if spec is None else show(spec),
            "add spec.template.spec.containers",
        )
        return [*out, missing]
    if "ttlSecondsAfterFinished" in spec:
        out.append(
            Problem(
                ("spec", "ttlSecondsAfterFinished"),
                "is not allowed: trial Jobs hold the study's history",
                show(spec["ttlSecondsAfterFinished"]),
                "remove it; trial Jobs go when the study is deleted",
            )
        )
    backoff = spec.get("backoffLimit")
    if backoff not in (None, 0):
        out.append(
            Problem(
                ("spec", "backoffLimit"),
                "must be 0 or absent: a failure of the training code is the trial's result",
                show(backoff),
                "remove it; budget.maxRetries re-runs a trial whose pod its node lost",
            )
        )
    pod = spec.get("template")
    pod_spec = pod.get("spec") if isinstance(pod, Mapping) else None
    containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        out.append(
            Problem(
                ("spec", "template", "spec", "containers"),
                "must list at least one container",
                show(containers),
                "add the trainer's container",
            )
        )
    return out


_TRIAL_TEMPLATE_FIELDS = ("apiVersion", "kind", "metadata", "spec", "resource",
                          "successCondition", "failureCondition", "metricsPod")


def trial_template_problems(t: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with ``trialTemplate``: fields it does not take, no kind, a Job (which
    jobTemplate describes), no pod template inside, or a kind kubetune does not know without
    what it needs to run and read it; paths are below ``trialTemplate``."""
    out = [Problem((key,), "is not a field of trialTemplate", show(t[key]),
                   f"keep {', '.join(_TRIAL_TEMPLATE_FIELDS)}")
           for key in t if key not in _TRIAL_TEMPLATE_FIELDS]
    api_version, kind = t.get("apiVersion"), t.get("kind")
    if not isinstance(api_version, str) or "/" not in api_version:
        out.append(Problem(("apiVersion",), "must be group/version", show(api_version),
                           "e.g. jobset.x-k8s.io/v1alpha2"))
    if not isinstance(kind, str) or not kind:
        out.append(Problem(("kind",), "is required", show(kind), "e.g. JobSet"))
    if kind == "Job" and api_version == "batch/v1":
        out.append(Problem(("kind",), "is a Job", show(kind),
                           "give it as jobTemplate (its metadata and spec) instead"))
    if not isinstance(t.get("spec"), Mapping) or next(pod_templates(t.get("spec")), None) is None:
        out.append(Problem(("spec",), "holds no pod template (a template whose spec lists "
                           "containers)", None, "give the resource's spec as in its manifest"))
    if out:
        return out
    if kind_of(t) is None:
        known = ", ".join(f"{k} ({v[0]})" for k, v in KNOWN.items())
        out.append(Problem((), f"is a {kind} of {api_version}, which kubetune does not know",
                           None, "give resource (its plural), successCondition, "
                           "failureCondition and metricsPod.matchLabels; kubetune knows "
                           f"{known}"))
    return out


# ---- wording of pydantic's own errors -------------------------------------------------------

# What to do about a string that does not match its field's pattern, by pattern.
_PATTERN_FIXES = {
    r"^[A-Za-z_][A-Za-z0-9_./-]*$": "start with a letter or '_', then use letters, digits, "
    "'_', '.', '/' or '-'",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "use lower-case letters, digits and '-', starting and "
    "ending with a letter or digit (a DNS label)",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$": "name a TuningStudy "
    "as Kubernetes names one: lower-case letters, digits, '-' and '.'",
}

# The union members of a parameter value, as pydantic names them in an error's location.
_TAGS = {"bool", "int", "float", "str"}


def describe(err: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem in ``err``, raised while validating ``root`` from a spec."""
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        if e["type"] == "spec_problem":
            lines += [_line(loc + p.path, p.what, p.got, p.fix) for p in e["ctx"]["problems"]]
            continue
        if len(loc) >= 2 and loc[-1] in _TAGS and isinstance(loc[-2], int):
            loc = loc[:-1]
        lines.append(_line(loc, *_wording(e, loc, root)))
    return lines


def _line(
    path: tuple[str | int, ...], what: str, got: str | None, fix: str, prefix: str = "spec"
) -> str:
    where = prefix + "".join(_part(x) for x in path if x != "[key]")
    return f"{where}: {what}" + (f" (got {got})" if got is not None else "") + f"; {fix}"


def _part(x: str | int) -> str:
    if isinstance(x, int):
        return f"[{x}]"
    return f".{x}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", x) else f"[{x!r}]"


def _wording(
    e: Mapping[str, Any], loc: tuple[str | int, ...], root: type[BaseModel]
) -> tuple[str, str | None, str]:
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    got = show(value)
    if "[key]" in loc:
        return "is not a valid parameter name", got, _PARAM_NAME_FIX
    if kind == "missing":
        return "is required", None, "add it"
    if kind == "extra_forbidden":
        known = _fields_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]}?" if close else "known fields: " + ", ".join(known)
        return "is not a known field", got, f"remove it; {hint}"
    bound = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for key, sign in bound.items():
        if key in ctx and kind.startswith(("greater", "less")):
            limit = exact(ctx[key])
            return f"must be {sign} {limit}", got, f"use a value {sign} {limit}"
    simple = {
        "literal_error": (f"must be one of {ctx.get('expected')}", "use one of them"),
        "finite_number": ("must be a finite number", "use a finite number"),
        "string_too_long": (f"is longer than {ctx.get('max_length')} characters", "shorten it"),
        "string_too_short": ("must not be empty", "give a value"),
        "string_pattern_mismatch": (
            f"must match {ctx.get('pattern')}",
            _PATTERN_FIXES.get(str(ctx.get("pattern")), "change it to match"),
        ),
        "too_long": (
            f"has {_size(value)} entries, more than the limit of {ctx.get('max_length')}",
            f"keep at most {ctx.get('max_length')}",
        ),
        "too_short": (f"must have at least {ctx.get('min_length')} entry", "add one"),
        "bool_type": ("must be true or false", "write true or false"),
        "string_type": ("must be a string", "quote it"),
        "value_type": ("must be a string, a number or a boolean", "use one of those"),
        "list_type": ("must be a list", "write it as [a, b, ...]"),
    }
    if kind in simple:
        what, fix = simple[kind]
        return what, got, fix
    if kind.startswith("int_"):
        return "must be a whole number", got, "write it without a fraction or quotes"
    if kind.startswith("float_"):
        return (
            "must be a number",
            got,
            "write a number without quotes (YAML 1.1 reads 1e-5 as a string: write 1.0e-5)",
        )
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping", got, "write it as key: value pairs"
    return e["msg"], got, "fix the value"


def _size(value: Any) -> int | str:
    try:
        return len(value)
    except TypeError:
        return "too many"


def _fields_at(root: Any, loc: tuple[str | int, ...]) -> list[str]:
    """The aliases of the model found by following ``loc`` down from ``root`` ([] if none)."""
    tp = root
    for x in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if x in (n, f.alias)), None)
            tp = None if field is None else field.annotation
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _strip(tp: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
