"""The samplers, by the name a TuningStudy gives in ``spec.algorithm.name``.

Each sampler lives in its own module and is imported only when first asked for, so that
``import kubetune.core`` stays light and a study that never uses the GP never loads its math.
"""

from __future__ import annotations

import importlib

from kubetune.core.samplers.base import Sampler

__all__ = ["SAMPLER_NAMES", "Sampler", "get_sampler", "sampler_module"]

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


def sampler_module(name: str) -> str:
    """The module that implements sampler ``name``."""
    return _registered(name)[0]


def _registered(name: str) -> tuple[str, str]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"spec.algorithm.name: {name!r} is not a sampler; use one of {', '.join(SAMPLER_NAMES)}"
        ) from None


def get_sampler(name: str) -> Sampler:
    """A sampler by name, importing its module on first use.

    Raises ValueError, naming ``spec.algorithm.name`` and the choices, for an unknown name.
    """
    module, cls = _registered(name)
    return getattr(importlib.import_module(module), cls)()
