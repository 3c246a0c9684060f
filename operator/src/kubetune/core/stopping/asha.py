"""Asynchronous successive halving (ASHA, Li et al. 2020), stopping variant. Pure.

Rungs sit at ``min_step * eta**k`` for every k with a rung below ``max_step``. A trial has
reached a rung when it reported a step >= the rung; its value there is its best value reported
at a step <= the rung (best-so-far, so that one noisy report does not decide its fate).

A Running trial is judged at the highest rung it has reached, against every trial that reached
that rung (itself included; finished, pruned and running alike; Lost ones left out). With ``n``
trials at the rung, the top ``floor(n / eta)`` continue, as in the ASHA paper's promotion rule;
the others are pruned. When ``floor(n / eta)`` is 0 (fewer than eta trials got there) nobody is
judged: the first trials at a rung cannot be compared with anyone. A trial ranks by how many
trials are strictly better, so ties continue.

Being level-based (decided from the trials alone, at every reconcile), a trial stays exposed to
its rung until it reaches the next one: a trial that passed rung r early, when few had got there,
can still be pruned at r by trials that arrive later while it is short of the next rung. A trial
that reported ``max_step`` or beyond is never stopped: it has finished its course.

The rule reads the first step, the last step and the running best at each rung, so it decides
the same on thinned curves as on full ones, even on curves that improve at more reports than
thinning can keep, provided they are thinned with the rungs as ``keep_steps``
(``stopping.keep_steps``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from kubetune.core.stopping._curves import Progress, Prune, fmt, progresses, running
from kubetune.core.trials import Trial

__all__ = ["DEFAULT_REDUCTION_FACTOR", "asha_stops", "rungs"]

DEFAULT_REDUCTION_FACTOR = 3


def rungs(min_step: int, max_step: int | None, reduction_factor: int) -> tuple[int, ...]:
    """Rung steps below ``max_step`` (all of them up to 2**62 when ``max_step`` is None)."""
    if min_step < 1:
        raise ValueError(
            f"earlyStopping.minStep must be at least 1 for asha, got {min_step}: "
            "rungs are minStep * reductionFactor**k, so set minStep to the first step at which "
            "trials can be compared (e.g. 1)"
        )
    if reduction_factor < 2:
        raise ValueError(
            f"earlyStopping.reductionFactor must be at least 2 for asha, got {reduction_factor}: "
            "it is the 1/eta that survives each rung; use 3 or 4"
        )
    top = max_step if max_step is not None else 2**62
    out = []
    r = min_step
    while r < top:
        out.append(r)
        r *= reduction_factor
    return tuple(out)


def asha_stops(
    trials: Sequence[Trial],
    *,
    minimize: bool,
    min_step: int,
    max_step: int | None,
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR,
    metric: str = "objective",
) -> list[Prune]:
    """Running trials ASHA stops, in trial-number order, each with its reason."""
    ladder = rungs(min_step, max_step, reduction_factor)
    everyone = progresses(trials, minimize=minimize)
    at_rung: dict[int, list[float]] = {}  # rung -> sorted losses of the trials that reached it
    stops = []
    for me in sorted(running(everyone), key=lambda p: p.number):
        if max_step is not None and me.last_step >= max_step:
            continue
        rung = _highest_reached(ladder, me.last_step)
        mine = me.best_at(rung) if rung is not None else None
        if rung is None or mine is None:
            continue
        if rung not in at_rung:
            at_rung[rung] = _population(everyone, rung)
        losses = at_rung[rung]
        keep = len(losses) // reduction_factor
        if keep == 0:
            continue
        better = bisect_left(losses, mine)  # trials strictly better than this one
        if better >= keep:
            stops.append(
                Prune(
                    me.number,
                    f"{metric} {fmt(me.value(mine))} (best so far) at rung step {rung} ranks "
                    f"{better + 1} of {len(losses)} trials there; only the top {keep} "
                    f"(1/{reduction_factor}) continue",
                )
            )
    return stops


def _highest_reached(ladder: tuple[int, ...], step: int) -> int | None:
    reached = [r for r in ladder if r <= step]
    return reached[-1] if reached else None


def _population(everyone: Sequence[Progress], rung: int) -> list[float]:
    return sorted(b for p in everyone if p.last_step >= rung and (b := p.best_at(rung)) is not None)
