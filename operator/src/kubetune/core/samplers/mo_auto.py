"""The default sampler of a study with several objectives: picks a sampler from the space and the
history, then defers to it.

Purely computational; the choice is a pure function of (space, history), so a restarted operator
chooses the same. The rule (``choose_multi_sampler``):

1. GP (``gp``, EHVI over one GP per objective) while fewer than ``GP_MAX_OBSERVED`` (200)
   trials have every objective, for at most ``GP_MAX_OBJECTIVES`` (2) objectives and at most
   ``GP_MAX_DIM`` (20) parameters. Its own startup design is the only initial design, as for
   one objective (``auto``).
2. Otherwise, below ``NSGA2_FROM`` (1,000) observed trials: Sobol while fewer than
   ``auto.startup_trials(space)`` trials have every objective (7 for six parameters, 10 from
   nine on; MOTPE's own random startup is 10, and Sobol's design is more even), then MOTPE
   (``tpe``).
3. From ``NSGA2_FROM`` observed trials on, NSGA-II (``nsga2``), whatever the space.

Why, measured with benchmarks/bench_multiobjective.py (mean normalised hypervolume; README,
"Multi-objective benchmark", has the whole run):

- The GP for two objectives: on ZDT1-3 and the constrained SRN it leads every sampler at 50
  trials and at 200, where it is still ahead of MOTPE and NSGA-II (ZDT1 0.995, MOTPE 0.498,
  NSGA-II 0.074). An earlier rule handed over to NSGA-II at 100 trials and lost at 200 on ZDT2
  (0.980 against the GP's 0.988) and ZDT3 (0.970 against 0.997). Beyond about 20 parameters
  plain GP regression loses its edge (Optuna's guidance; the same bound as ``auto``).
- MOTPE for three or four objectives: on DTLZ2 (three objectives, six parameters, 10 seeds) the
  GP scores 0.364 at 50 trials, below random search (0.334 to 0.347), because EHVI against a
  reference point past the worst trial values the corners of the front (one objective near 0,
  the others large) and heads for the edges of the space; Sobol then MOTPE scores 0.479, and
  0.841 at 200 trials where handing over to NSGA-II at 100 scored 0.741.
- NSGA-II only from 1,000 trials: it spends a population on each generation, which at these
  budgets loses to every model (DTLZ2 0.539 at 200 trials, ZDT1 0.074). The hand-over is for
  studies that run thousands of cheap trials, as Optuna's AutoSampler hands over to it for
  several objectives; the point (1,000) is not measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune.core.objectives import Objective
from kubetune.core.samplers import get_multi_sampler
from kubetune.core.samplers.auto import startup_trials
from kubetune.core.samplers.base import MultiHistory, multi_history_of
from kubetune.core.space import Space
from kubetune.core.trials import Trial

__all__ = [
    "GP_MAX_DIM",
    "GP_MAX_OBJECTIVES",
    "GP_MAX_OBSERVED",
    "NSGA2_FROM",
    "MultiAutoSampler",
    "choose_multi_sampler",
]

GP_MAX_OBSERVED = 200
GP_MAX_DIM = 20
GP_MAX_OBJECTIVES = 2
NSGA2_FROM = 1000


def choose_multi_sampler(space: Space, history: MultiHistory) -> str:
    """The name of the sampler that proposes next for this space and history. Pure."""
    observed = history.n_observed
    if observed >= NSGA2_FROM:
        return "nsga2"
    gp_fits = space.dim <= GP_MAX_DIM and history.y.shape[1] <= GP_MAX_OBJECTIVES
    if gp_fits and observed < GP_MAX_OBSERVED:
        return "gp"
    return "sobol" if observed < startup_trials(space) else "tpe"


class MultiAutoSampler:
    """GP for two objectives, Sobol then MOTPE otherwise, NSGA-II for thousands of trials, by
    the rule in this module's docstring."""

    name = "auto"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        chosen = choose_multi_sampler(space, multi_history_of(space, trials, objectives))
        return get_multi_sampler(chosen).suggest(
            space, trials, n, objectives=objectives, seed=seed
        )
