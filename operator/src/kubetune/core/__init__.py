"""The pure core of kubetune: search spaces, trial records, samplers, early stopping, planning.

Nothing here does I/O or imports a Kubernetes client; the kube layer gathers inputs, calls these
functions and applies what they return.

``suggest(spec, trials, n)`` is the sampler entry point: a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubetune.core.objectives import judged
from kubetune.core.samplers import get_multi_sampler, get_sampler
from kubetune.core.trials import Trial, as_trials

if TYPE_CHECKING:
    from kubetune.core.spec import StudySpec

__all__ = ["suggest"]


def suggest(
    spec: StudySpec | Mapping[str, Any],
    trials: Sequence[Trial | Mapping[str, Any]],
    n: int,
) -> list[dict[str, Any]]:
    """Propose ``n`` new parameter sets for a study. Pure and deterministic.

    ``spec`` is a TuningStudy ``.spec``, as a dict (camelCase, as in the manifest) or a
    ``StudySpec``; ``trials`` are ``Trial`` records or plain dicts
    ``{"params", "state", "value", "curve", "values"}`` (``values``: the final report's
    metrics, which several objectives and constraints read). Randomness comes only from
    ``spec.algorithm.seed`` (0 when unset; the kube layer sets one derived from the study's UID)
    and the history, so the same inputs always give the same proposals. Pending and Running
    trials are pending points: proposals avoid them and each other.

    Returns ``n`` dicts, except that grid search returns fewer once its grid is used up. Raises
    ``SpecError`` (a ValueError) for an invalid spec and ValueError for a negative ``n``.
    """
    from kubetune.core import spec as specs  # pydantic models: loaded by the first call only

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"suggest: n={n!r} is not a count; pass an int >= 0")
    if n == 0:
        return []
    study = specs.parse_spec(spec)
    seed = 0 if study.algorithm.seed is None else study.algorithm.seed
    history = judged(as_trials(trials), specs.constraints_of(study))
    space = specs.space_of(study)
    if study.objectives is not None:
        proposals = get_multi_sampler(study.algorithm.name).suggest(
            space, history, n, objectives=specs.objectives_of(study), seed=seed)
    else:
        proposals = get_sampler(study.algorithm.name).suggest(
            space, history, n, minimize=specs.minimize(study), seed=seed)
    return [dict(p) for p in proposals]
