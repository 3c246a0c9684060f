"""Where a study's constraints are believed to hold: a GP on how far each trial broke them. Pure.

Each observed trial carries one number, its violation (``core.objectives.violation``): 0.0 when
it kept every constraint, the summed relative excess otherwise. The model is a GP on a signed
target ``g`` that is at most 0 exactly where a trial is feasible:

- an infeasible trial: ``log(2 + v / s)``, with ``s`` the median violation among the
  infeasible ones, so that the scale is the study's own and one huge violation does not flatten
  the rest; more violation, higher, which is what leads a search toward feasibility;
- a feasible trial: ``-log 2``. How much slack it had is not known, so a feasible and an
  infeasible trial next to the border sit symmetrically about 0, and the border is placed
  halfway between them. (Targets that rose from 0 with the violation put it next to the
  infeasible trials instead: proposals then landed just past the true border, believed
  feasible with P = 0.99.)

``P(feasible at x) = P(g(x) <= 0)`` under the posterior. The GP's prior mean is 0, the border
itself, so a point far from every trial is a coin toss rather than borrowing the verdict of
the majority of trials.

The samplers add ``log P(feasible)`` to their log acquisition (expected improvement weighted by
the probability of feasibility, Gardner et al. 2014, as Optuna's constrained log EI does), and
while no observed trial is feasible they maximise ``log P(feasible)`` alone.

Only a study with at least one infeasible trial gets a model (``fit`` returns None otherwise),
so a study without constraints, or one that has broken none yet, is sampled exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from kubetune.core.samplers._gp import fit as gp_fit
from kubetune.core.samplers._gp.acquisition import _MIN_VAR

__all__ = ["ConstrainedAcquisition", "Feasibility", "fit", "ranking"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def ranking(y: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Keys whose ascending order ranks the rows, best first: ``y`` itself when every row is
    feasible; otherwise the feasible rows by ``y``, then the infeasible ones by violation (as
    ranks 0..n-1). The order a constrained study's best trials are read in."""
    infeasible = violation > 0.0
    if not infeasible.any():
        return y
    order = np.lexsort((np.where(infeasible, violation, y), infeasible))
    keys = np.empty(len(y))
    keys[order] = np.arange(len(y))
    return keys


def _targets(violation: np.ndarray) -> np.ndarray:
    """The signed target ``g`` of each row (see the module docstring)."""
    infeasible = violation > 0.0
    scale = float(np.median(violation[infeasible]))
    return np.where(infeasible, np.log(2.0 + violation / scale), -math.log(2.0))


@dataclass(frozen=True)
class Feasibility:
    """The fitted model: its posterior, and its training data (for the lies of ``with_lies``)."""

    posterior: gp_fit.Posterior
    x: np.ndarray
    g: np.ndarray

    def log_prob(self, xq: np.ndarray) -> np.ndarray:
        """log P(feasible) at the rows of ``xq``."""
        mean, var = self.posterior.predict(xq)
        return np.asarray(special.log_ndtr(-mean / np.sqrt(np.maximum(var, _MIN_VAR))))

    def log_prob_with_grad(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log P(feasible) (m,) and its gradient (m, d) at the rows of ``xq``."""
        mean, var, dmean, dvar = self.posterior.predict_with_grad(xq)
        floored = var <= _MIN_VAR
        var = np.maximum(var, _MIN_VAR)
        sd = np.sqrt(var)
        z = -mean / sd
        log_p = special.log_ndtr(z)
        # d log Phi(z) / dz = phi(z) / Phi(z), taken in logs so that it stays finite.
        ratio = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - log_p)
        d_mean = -ratio / sd
        d_var = np.where(floored, 0.0, -ratio * z / (2.0 * var))
        return log_p, d_mean[:, None] * dmean + d_var[:, None] * dvar

    def believed(self, xq: np.ndarray) -> np.ndarray:
        """Whether the posterior mean at each row of ``xq`` is feasible (P >= 1/2): how the
        kriging believer reads a pending point or a batch member it has not seen finish."""
        return np.asarray(self.posterior.predict(xq)[0] <= 0.0)

    def with_lies(self, xp: np.ndarray) -> Feasibility:
        """This model with the points ``xp`` told as infeasible, as badly as the worst trial (the
        constant liar at its maximum). Used while no trial is feasible: there is no incumbent
        whose fantasies would spread a batch, so the lies push the next member away instead."""
        if len(xp) == 0:
            return self
        x = np.vstack([self.x, xp])
        g = np.concatenate([self.g, np.full(len(xp), float(self.g.max()))])
        post = gp_fit.Posterior.fit(x, g, self.posterior.params, self.posterior.is_cat)
        return Feasibility(post, x, g)


def fit(x: np.ndarray, violation: np.ndarray, is_cat: np.ndarray) -> Feasibility | None:
    """The feasibility model of observed points ``x`` with their violations; None when none of
    them broke a constraint (then there is nothing to steer away from)."""
    if not (violation > 0.0).any():
        return None
    g = _targets(violation)
    params = gp_fit.fit_kernel_params(x, g, is_cat)
    return Feasibility(gp_fit.Posterior.fit(x, g, params, is_cat), x, g)


class ConstrainedAcquisition:
    """``log acq(x) + log P(feasible at x)``; with ``acq`` None (no feasible incumbent yet),
    ``log P(feasible)`` alone. Satisfies ``optimize.Acquisition``."""

    def __init__(self, feasibility: Feasibility, acq: Any = None) -> None:
        self.feasibility, self.acq = feasibility, acq

    def __call__(self, x: np.ndarray) -> np.ndarray:
        log_p = self.feasibility.log_prob(x)
        return log_p if self.acq is None else np.asarray(self.acq(x)) + log_p

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_p, grad = self.feasibility.log_prob_with_grad(x)
        if self.acq is None:
            return log_p, grad
        value, acq_grad = self.acq.with_grad(x)
        return value + log_p, acq_grad + grad
