"""The pure core of kubetune: search spaces, trial records, samplers, early stopping, planning.

Nothing here does I/O or imports a Kubernetes client; the kube layer gathers inputs, calls these
functions and applies what they return.

``suggest(spec, trials, n)`` is the sampler entry point: a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubetune.core.samplers import get_sampler
from kubetune.core.space import Space
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
    ``{"params", "state", "value", "curve"}``. Randomness comes only from
    ``spec.algorithm.seed`` (0 when unset; the kube layer sets one derived from the study's UID)
    and the history, so the same inputs always give the same proposals. Pending and Running
    trials are pending points: proposals avoid them and each other.

    Returns ``n`` dicts, except that grid search returns fewer once its grid is used up. Raises
    ``SpecError`` (a ValueError) for an invalid spec and ValueError for a negative ``n``.
    """
    from kubetune.core.spec import parse_spec  # pydantic models: loaded by the first call only

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"suggest: n={n!r} is not a count; pass an int >= 0")
    if n == 0:
        return []
    study = parse_spec(spec)
    algorithm = study.algorithm
    name = "auto" if algorithm is None else _plain(algorithm.name)
    seed = 0 if algorithm is None or algorithm.seed is None else int(algorithm.seed)
    proposals = get_sampler(name).suggest(
        Space.from_search_space(study.search_space),
        as_trials(trials),
        n,
        minimize=_plain(study.objective.direction) == "minimize",
        seed=seed,
    )
    return [dict(p) for p in proposals]


def _plain(value: Any) -> str:
    """An enum member's value, or the string itself."""
    return str(getattr(value, "value", value))
