"""``python -m kubetune_devcluster up|down|status|agent``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kubetune_devcluster import cluster

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "agent"])
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.environ.get("DEVCLUSTER_STATE", ".devcluster")))
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--gpus", type=int, help="nvidia.com/gpu per node")
    parser.add_argument("--cpu", help="cpu per node, e.g. 8")
    parser.add_argument("--memory", help="memory per node, e.g. 32Gi")
    args = parser.parse_args(argv)

    if args.command == "agent":
        from kubetune_devcluster import agent

        agent.main(args.state_dir.resolve())
        return 0
    if args.command == "down":
        cluster.down(args.state_dir)
        print("devcluster: stopped")
        return 0
    if args.command == "status":
        state = cluster.load_state(args.state_dir.resolve())
        healthy = state is not None and cluster.is_healthy(state)
        print("devcluster: " + ("running, kubeconfig " + str(state.kubeconfig) if healthy
                                else "not running"))
        return 0 if healthy else 1

    config = cluster.ClusterConfig.from_env(args.state_dir)
    overrides = {k: v for k, v in {"nodes": args.nodes, "node_gpus": args.gpus,
                                   "node_cpu": args.cpu, "node_memory": args.memory}.items()
                 if v is not None}
    config = cluster.ClusterConfig(**{**config.__dict__, **overrides})
    started = time.monotonic()
    try:
        state = cluster.up(config)
    except (RuntimeError, TimeoutError) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"devcluster: up in {time.monotonic() - started:.1f} s; "
          f"export KUBECONFIG={state.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
