"""The samplers, by the name a TuningStudy gives in ``spec.algorithm.name``.

Each sampler lives in its own module and is imported only when first asked for, so that
``import kubetune.core`` stays light and a study that never uses the GP never loads its math.
"""

from __future__ import annotations

import importlib

from kubetune.core.samplers.base import MultiSampler, Sampler

__all__ = [
    "MODEL_FITTING",
    "MULTI_SAMPLER_NAMES",
    "SAMPLER_NAMES",
    "MultiSampler",
    "Sampler",
    "get_multi_sampler",
    "get_sampler",
    "sampler_module",
]

# name -> (module, class). The order is the order users read in errors and docs.
_REGISTRY: dict[str, tuple[str, str]] = {
    "auto": ("kubetune.core.samplers.auto", "AutoSampler"),
    "random": ("kubetune.core.samplers.random", "RandomSampler"),
    "grid": ("kubetune.core.samplers.grid", "GridSampler"),
    "sobol": ("kubetune.core.samplers.sobol", "SobolSampler"),
    "tpe": ("kubetune.core.samplers.tpe", "TPESampler"),
    "gp": ("kubetune.core.samplers.gp", "GPSampler"),
    "cmaes": ("kubetune.core.samplers.cmaes", "CMAESSampler"),
}

SAMPLER_NAMES: tuple[str, ...] = tuple(_REGISTRY)

# Studies with several objectives (spec.objectives): the same names where the idea carries over
# (gp: a GP per objective with random scalarizations; tpe: MOTPE), and NSGA-II.
_MULTI_REGISTRY: dict[str, tuple[str, str]] = {
    "auto": ("kubetune.core.samplers.mo_auto", "MultiAutoSampler"),
    "random": ("kubetune.core.samplers.mo_plain", "MultiRandomSampler"),
    "grid": ("kubetune.core.samplers.mo_plain", "MultiGridSampler"),
    "sobol": ("kubetune.core.samplers.mo_plain", "MultiSobolSampler"),
    "tpe": ("kubetune.core.samplers.motpe", "MOTPESampler"),
    "gp": ("kubetune.core.samplers.mogp", "MultiGPSampler"),
    "nsga2": ("kubetune.core.samplers.nsga2", "NSGA2Sampler"),
}

MULTI_SAMPLER_NAMES: tuple[str, ...] = tuple(_MULTI_REGISTRY)

# The samplers that fit a model on every call (Gaussian processes: seconds at 100 trials,
# against milliseconds for the others), for one objective or several; the operator runs these
# apart (``kube.sampling``).
MODEL_FITTING: frozenset[str] = frozenset({"auto", "gp"})


def sampler_module(name: str) -> str:
    """The module that implements sampler ``name``."""
    return _registered(name)[0]


def _registered(name: str, multi: bool = False) -> tuple[str, str]:
    registry = _MULTI_REGISTRY if multi else _REGISTRY
    try:
        return registry[name]
    except KeyError:
        what = "a sampler for several objectives" if multi else "a sampler for one objective"
        raise ValueError(
            f"spec.algorithm.name: {name!r} is not {what}; use one of {', '.join(registry)}"
        ) from None


def get_sampler(name: str) -> Sampler:
    """A sampler by name, importing its module on first use.

    Raises ValueError, naming ``spec.algorithm.name`` and the choices, for an unknown name.
    """
    module, cls = _registered(name)
    return getattr(importlib.import_module(module), cls)()


def get_multi_sampler(name: str) -> MultiSampler:
    """A sampler for a study with several objectives, by name (``MULTI_SAMPLER_NAMES``).

    Raises ValueError, naming ``spec.algorithm.name`` and the choices, for an unknown name.
    """
    module, cls = _registered(name, multi=True)
    return getattr(importlib.import_module(module), cls)()
