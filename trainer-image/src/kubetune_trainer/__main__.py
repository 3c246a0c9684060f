"""``python -m kubetune_trainer``: train with the given hyperparameters, or run a toy objective.

See the package docstring for the parameters and exit statuses. Toys and ``--help`` never
import torch, so they start in a fraction of a second.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_REFUSED = 2
EXIT_DIVERGED = 4


def _fail(message: str, status: int) -> int:
    print(f"kubetune-trainer: {message}", file=sys.stderr, flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trainer (or ``toy <name>``) with ``argv``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "toy":
        from kubetune_trainer import toys

        return toys.main(args[1:])
    if args and args[0] in ("-h", "--help"):
        import kubetune_trainer

        print(kubetune_trainer.__doc__)
        return 0

    from kubetune_trainer import params as params_module
    from kubetune_trainer.distributed import Group

    try:
        params = params_module.params_from_env_and_argv(args)
        params_module.objective_metric()
        group = Group.from_env()
    except (params_module.ParamError, ValueError) as exc:
        return _fail(str(exc), EXIT_REFUSED)

    from kubetune_trainer import data, train  # imports torch

    try:
        train.run(params, group=group)
    except data.DataError as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except train.DivergedError as exc:
        return _fail(str(exc), EXIT_DIVERGED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
