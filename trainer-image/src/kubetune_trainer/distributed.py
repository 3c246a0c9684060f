"""Data-parallel training across the workers of one trial (``trial.workers`` above 1).

The operator tells each worker ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
(what ``torch.distributed``'s ``env://`` reads); ``Group.from_env`` reads them, and ``join``
starts the process group: gloo on CPU, nccl on CUDA. Every worker draws the same shuffled
order; each step's ``batch_size`` examples are split between the workers (at least one each),
so a step sees as many examples as on one worker and a trial takes as many steps;
DistributedDataParallel averages the gradients. Losses and accuracy are summed across
workers, so every worker computes the same metrics, and worker 0 reports them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Group"]


@dataclass(frozen=True)
class Group:
    """This worker's place among the trial's workers."""

    rank: int
    size: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Group | None:
        """The group the environment describes, or None for a trial of one worker. Raises
        ValueError naming a variable that is not a number or out of range."""
        env = os.environ if environ is None else environ
        size_text = env.get("WORLD_SIZE", "1") or "1"
        try:
            size = int(size_text)
            rank = int(env.get("RANK", "0") or "0")
        except ValueError:
            raise ValueError(f"WORLD_SIZE={size_text!r} and RANK={env.get('RANK')!r} must be "
                             "whole numbers") from None
        if size <= 1:
            return None
        if not 0 <= rank < size:
            raise ValueError(f"RANK={rank} is not a worker of WORLD_SIZE={size} (0 to {size - 1})")
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(name):
                raise ValueError(f"{name} is not set: WORLD_SIZE={size} needs worker 0's "
                                 "address (MASTER_ADDR) and port (MASTER_PORT)")
        return cls(rank, size)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def join(self, cuda: bool) -> str:
        """Start the process group; returns the backend."""
        import torch.distributed as dist

        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=self.rank,
                                world_size=self.size)
        return backend

    @staticmethod
    def leave() -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
