"""Every optimizer of the sampler benchmark behind one ask/tell interface.

An optimizer is made for one run: ``make(name, search_space, seed, budget, batch)``. It answers
``ask(k)`` with ``k`` parameter dicts (a batch: all pending until told) and takes their values
with ``tell(params, values)``. ``search_space`` is a TuningStudy ``searchSpace``, so every
optimizer sees the same parameters.

- ``kt-*``: kubetune's samplers through ``kubetune.core.suggest``; a batch's earlier asks are
  Running trials when the later ones are asked.
- ``optuna-tpe``, ``optuna-gp``, ``optuna-cmaes``: Optuna's samplers at their defaults (GP with
  ``deterministic_objective`` only on noiseless problems), asked ``k`` times before told.
- ``ngopt``: nevergrad's NGOpt, told the budget and ``num_workers=batch``.
- ``smac-bb``, ``smac-hpo``: SMAC3's BlackBox and HyperparameterOptimization facades.
- ``hebo``: HEBO, ``suggest(n_suggestions=k)``.

A peer whose package is missing is left out by ``available()`` with the import error, never
silently: the report names it.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["OURS", "PEERS", "Optimizer", "available", "make", "optuna_distributions"]

OURS = ("kt-auto", "kt-gp", "kt-tpe", "kt-cmaes")
PEERS = ("optuna-tpe", "optuna-gp", "optuna-cmaes", "ngopt", "smac-bb", "smac-hpo", "hebo")
# The module each peer needs, to say which are installed.
_NEEDS = {
    "optuna-tpe": "optuna",
    "optuna-gp": "optuna",
    "optuna-cmaes": "cmaes",
    "ngopt": "nevergrad",
    "smac-bb": "smac",
    "smac-hpo": "pyrfr",
    "hebo": "hebo",
}
_JOB = {"spec": {"template": {"spec": {"containers": [{"name": "bench", "image": "none"}]}}}}

Space = Mapping[str, Mapping[str, Any]]


class Optimizer(Protocol):
    def ask(self, k: int) -> list[dict[str, Any]]: ...

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None: ...


def available(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The names whose packages import here, and why each other one does not."""
    ok, missing = [], {}
    for name in names:
        module = _NEEDS.get(name)
        if module is None:
            ok.append(name)
            continue
        try:
            importlib.import_module(module)
            ok.append(name)
        except Exception as exc:  # a broken install is reported, not fatal
            missing[name] = f"{type(exc).__name__}: {exc}"
    return ok, missing


def make(name: str, space: Space, seed: int, budget: int, batch: int, noisy: bool) -> Optimizer:
    """A fresh optimizer ``name`` for one run."""
    if name.startswith("kt-"):
        return _Ours(name[3:], space, seed)
    if name.startswith("optuna-"):
        return _Optuna(name, space, seed, noisy)
    if name == "ngopt":
        return _NGOpt(space, seed, budget, batch)
    if name.startswith("smac-"):
        return _SMAC(name, space, seed, budget, noisy)
    if name == "hebo":
        return _HEBO(space, seed)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OURS + PEERS)}")


class _Ours:
    def __init__(self, sampler: str, space: Space, seed: int) -> None:
        from kubetune.core.spec import parse_spec

        self.study = parse_spec(
            {
                "objective": {"metric": "y", "direction": "minimize"},
                "searchSpace": dict(space),
                "algorithm": {"name": sampler, "seed": seed},
                "jobTemplate": _JOB,
            }
        )
        self.trials: list[Any] = []
        self.pending: list[dict[str, Any]] = []

    def ask(self, k: int) -> list[dict[str, Any]]:
        from kubetune.core import suggest
        from kubetune.core.trials import Trial, TrialState

        out = []
        for _ in range(k):
            n = len(self.trials)
            running = [
                Trial(n + i, p, TrialState.RUNNING) for i, p in enumerate(self.pending + out)
            ]
            out += suggest(self.study, self.trials + running, 1)
        self.pending += out
        return out

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        from kubetune.core.trials import Trial, TrialState

        for p, v in zip(params, values, strict=True):
            self.pending.remove(dict(p))
            self.trials.append(Trial(len(self.trials), dict(p), TrialState.SUCCEEDED, v))


def optuna_distributions(space: Space) -> dict[str, Any]:
    from optuna import distributions as d

    out: dict[str, Any] = {}
    for name, p in space.items():
        if p["type"] == "categorical":
            out[name] = d.CategoricalDistribution(p["values"])
        elif p["type"] == "int":
            out[name] = d.IntDistribution(
                p["low"], p["high"], log=p.get("log", False), step=p.get("step") or 1
            )
        else:
            out[name] = d.FloatDistribution(
                p["low"], p["high"], log=p.get("log", False), step=p.get("step")
            )
    return out


class _Optuna:
    def __init__(self, name: str, space: Space, seed: int, noisy: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        samplers = optuna.samplers
        sampler = {
            "optuna-tpe": lambda: samplers.TPESampler(seed=seed),
            "optuna-gp": lambda: samplers.GPSampler(seed=seed, deterministic_objective=not noisy),
            "optuna-cmaes": lambda: samplers.CmaEsSampler(seed=seed),
        }[name]()
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.dists = optuna_distributions(space)
        self.space = space
        self.conditional = any(p.get("when") for p in space.values())
        self.asked: dict[tuple, list[Any]] = {}

    def ask(self, k: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(k):
            if self.conditional:
                # Define-by-run, as an Optuna user writes a conditional space: a parameter is
                # suggested only when the choices made before it activate it.
                trial = self.study.ask()
                for name, p in self.space.items():
                    if _active(p, trial.params):
                        _suggest(trial, name, p)
            else:
                trial = self.study.ask(self.dists)
            self.asked.setdefault(_key(trial.params), []).append(trial)
            out.append(dict(trial.params))
        return out

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        for p, v in zip(params, values, strict=True):
            self.study.tell(self.asked[_key(p)].pop(0), v)


def _suggest(trial: Any, name: str, p: Mapping[str, Any]) -> None:
    if p["type"] == "categorical":
        trial.suggest_categorical(name, list(p["values"]))
    elif p["type"] == "int":
        trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False),
                          step=p.get("step") or 1)
    else:
        trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False),
                            step=p.get("step"))


def _active(p: Mapping[str, Any], chosen: Mapping[str, Any]) -> bool:
    """Whether parameter ``p`` is active given the values ``chosen`` so far (its parents come
    first in the search space)."""
    return all(parent in chosen and chosen[parent] in values
               for parent, values in (p.get("when") or {}).items())


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _numpy2_scalar(value: Any) -> float:
    return float(np.asarray(value).reshape(-1)[0])


class _NGOpt:
    def __init__(self, space: Space, seed: int, budget: int, batch: int) -> None:
        import nevergrad as ng
        from nevergrad.optimization import metamodel

        # nevergrad 1.0.12's metamodel (NGOpt's choice for parallel asks) calls float() on a
        # one-element array, which numpy 2.4 refuses; give that module a float that accepts it.
        metamodel.float = _numpy2_scalar  # type: ignore[attr-defined]

        parts: dict[str, Any] = {}
        for name, p in space.items():
            if p["type"] == "categorical":
                parts[name] = ng.p.Choice(list(p["values"]))
            elif p.get("log"):
                parts[name] = ng.p.Log(lower=p["low"], upper=p["high"])
            else:
                parts[name] = ng.p.Scalar(lower=p["low"], upper=p["high"])
            if p["type"] == "int":
                parts[name].set_integer_casting()
        param = ng.p.Dict(**parts)
        param.random_state = np.random.RandomState(seed)
        self.space = space
        self.opt = ng.optimizers.NGOpt(parametrization=param, budget=budget, num_workers=batch)
        self.asked: dict[tuple, list[Any]] = {}

    def ask(self, k: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(k):
            cand = self.opt.ask()
            params = _snap(self.space, cand.value)
            self.asked.setdefault(_key(params), []).append(cand)
            out.append(params)
        return out

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        for p, v in zip(params, values, strict=True):
            self.opt.tell(self.asked[_key(p)].pop(0), v)


def _snap(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values inside the bounds (peers return numpy scalars, ints as floats)."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if name not in values:
            continue  # inactive in a conditional space
        v = values[name]
        if p["type"] == "categorical":
            out[name] = v.item() if hasattr(v, "item") else v
        elif p["type"] == "int":
            out[name] = int(min(max(round(float(v)), p["low"]), p["high"]))
        else:
            out[name] = float(min(max(float(v), p["low"]), p["high"]))
    return out


class _SMAC:
    def __init__(self, name: str, space: Space, seed: int, budget: int, noisy: bool) -> None:
        from ConfigSpace import (
            AndConjunction,
            Categorical,
            ConfigurationSpace,
            Float,
            InCondition,
            Integer,
        )
        from smac import BlackBoxFacade, HyperparameterOptimizationFacade, Scenario

        for logger in ("smac", "ConfigSpace"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        cs = ConfigurationSpace(seed=seed)
        hps = {}
        for pname, p in space.items():
            if p["type"] == "categorical":
                hps[pname] = Categorical(pname, list(p["values"]))
            elif p["type"] == "int":
                hps[pname] = Integer(pname, (p["low"], p["high"]), log=p.get("log", False))
            else:
                hps[pname] = Float(pname, (p["low"], p["high"]), log=p.get("log", False))
            cs.add(hps[pname])
        for pname, p in space.items():
            # ConfigSpace's own conditions: SMAC handles inactive parameters itself.
            conds = [InCondition(hps[pname], hps[parent], list(values))
                     for parent, values in (p.get("when") or {}).items()]
            if conds:
                cs.add(conds[0] if len(conds) == 1 else AndConjunction(*conds))
        self._dir = tempfile.TemporaryDirectory(prefix="smac-")
        scenario = Scenario(
            cs,
            deterministic=not noisy,
            n_trials=budget,
            seed=seed,
            output_directory=self._dir.name,
        )
        facade = BlackBoxFacade if name == "smac-bb" else HyperparameterOptimizationFacade
        self.opt = facade(
            scenario,
            lambda config, seed=0: 0.0,  # never called: the benchmark asks and tells
            overwrite=True,
            logging_level=40,
        )
        self.space = space
        self.asked: dict[tuple, list[Any]] = {}

    def ask(self, k: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(k):
            info = self.opt.ask()
            params = _snap(self.space, dict(info.config))
            self.asked.setdefault(_key(params), []).append(info)
            out.append(params)
        return out

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        from smac.runhistory.dataclasses import TrialValue

        for p, v in zip(params, values, strict=True):
            self.opt.tell(self.asked[_key(p)].pop(0), TrialValue(cost=float(v)), save=False)


class _HEBO:
    def __init__(self, space: Space, seed: int) -> None:
        import torch
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        torch.set_num_threads(1)
        np.random.seed(seed)
        torch.manual_seed(seed)
        spec = []
        for name, p in space.items():
            if p["type"] == "categorical":
                spec.append({"name": name, "type": "cat", "categories": list(p["values"])})
            elif p["type"] == "int":
                kind = "pow_int" if p.get("log") else "int"
                spec.append({"name": name, "type": kind, "lb": p["low"], "ub": p["high"]})
            else:
                kind = "pow" if p.get("log") else "num"
                spec.append({"name": name, "type": kind, "lb": p["low"], "ub": p["high"]})
        self.space = space
        self.opt = HEBO(DesignSpace().parse(spec), scramble_seed=seed)
        self.asked: dict[tuple, list[Any]] = {}

    def ask(self, k: int) -> list[dict[str, Any]]:
        frame = self.opt.suggest(n_suggestions=k)
        out = []
        for i in range(len(frame)):
            row = frame.iloc[[i]]
            params = _snap(self.space, row.iloc[0].to_dict())
            self.asked.setdefault(_key(params), []).append(row)
            out.append(params)
        return out

    def tell(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        for p, v in zip(params, values, strict=True):
            self.opt.observe(self.asked[_key(p)].pop(0), np.array([[float(v)]]))
