"""The default sampler of a study with several objectives: picks a sampler from the space and the
history, then defers to it.

Purely computational; the choice is a pure function of (space, history), so a restarted operator
chooses the same. The rule (``choose_multi_sampler``):

1. GP (``gp``) for spaces of at most ``GP_MAX_DIM`` (20) parameters, while fewer trials than
   ``gp_max_observed`` have every objective: 200 for two objectives (EHVI), 100 for three or
   four (random hypervolume scalarisations). Its own startup design is the only initial
   design, as for one objective (``auto``).
2. Otherwise, below ``NSGA2_FROM`` (1,000) observed trials: Sobol while fewer than
   ``auto.startup_trials(space)`` trials have every objective (10 for a wide space; MOTPE's own
   random startup is 10, and Sobol's design is more even), then MOTPE (``tpe``).
3. From ``NSGA2_FROM`` observed trials on, NSGA-II (``nsga2``), whatever the space.

Why, measured with benchmarks/bench_multiobjective.py (mean normalised hypervolume at 50 and 200
sequential trials; README, "Multi-objective benchmark", has the whole run):

- Two objectives: on ZDT1-3 and the constrained SRN (10 seeds) the GP leads every sampler at
  200 trials, well ahead of MOTPE and NSGA-II (ZDT1 0.995, MOTPE 0.550, NSGA-II 0.186), and at
  50 trials on all but ZDT3, where it ties Optuna's GP (0.836 each); with 20 seeds it leads on
  ZDT3 too (0.880 against 0.820). An earlier rule handed
  over to NSGA-II at 100 trials and lost at 200 on ZDT2 (0.980 against the GP alone, 0.988) and
  ZDT3 (0.970 against 0.997; 5 seeds).
- Three objectives (DTLZ2, six parameters, 10 seeds): the GP's ParEGO (then on Chebyshev
  scalarisations) scores 0.516 at 50 trials, MOTPE 0.486, Optuna's MOTPE 0.471; at 200, ParEGO
  alone 0.805 (5 seeds: 0.802), MOTPE alone 0.841, and ParEGO handing over to MOTPE at 100
  trials 0.850. So the GP while the model has few points to go on, MOTPE once the good group
  holds ten or more trials. With 20 seeds and the GP's hypervolume scalarisations (``mogp``):
  0.518 at 50 trials against MOTPE's 0.486 and Optuna's 0.475; at 200 the hand-over 0.845, the
  GP alone 0.792, MOTPE alone 0.829, Optuna's 0.835.
- Beyond about 20 parameters plain GP regression loses its edge (Optuna's guidance; the same
  bound as ``auto``): MOTPE, which needs no model of the whole space.
- NSGA-II only from 1,000 trials: it spends a population on each generation, which at these
  budgets loses to every model (DTLZ2 0.588 at 200 trials, ZDT1 0.186). The hand-over is for
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

__all__ = ["GP_MAX_DIM", "NSGA2_FROM", "MultiAutoSampler", "choose_multi_sampler",
           "gp_max_observed"]

GP_MAX_DIM = 20
NSGA2_FROM = 1000


def gp_max_observed(n_objectives: int) -> int:
    """Observed trials below which the GP proposes: 200 with EHVI (two objectives), 100 with
    random scalarisations (three or four)."""
    return 200 if n_objectives <= 2 else 100


def choose_multi_sampler(space: Space, history: MultiHistory) -> str:
    """The name of the sampler that proposes next for this space and history. Pure."""
    observed = history.n_observed
    if observed >= NSGA2_FROM:
        return "nsga2"
    if space.dim <= GP_MAX_DIM and observed < gp_max_observed(history.y.shape[1]):
        return "gp"
    return "sobol" if observed < startup_trials(space) else "tpe"


class MultiAutoSampler:
    """GP, then (or for wide spaces Sobol then) MOTPE, NSGA-II for thousands of trials, by the
    rule in this module's docstring."""

    name = "auto"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        chosen = choose_multi_sampler(space, multi_history_of(space, trials, objectives))
        return get_multi_sampler(chosen).suggest(
            space, trials, n, objectives=objectives, seed=seed
        )
