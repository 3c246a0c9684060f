"""A CNI plugin for devcluster's real nodes: each pod gets a network of its own that reaches
nothing outside it.

The kernel here has no dummy, macvlan or ipvlan driver, and a bridge or any route out of the
host is not allowed, so ADD creates a veth pair with both ends inside the pod's network
namespace (``eth0`` and ``eth0-peer``) and gives ``eth0`` an address from the node's own range.
The pod sees loopback and an address of its own; it can reach no other pod and no host. Pods
that must reach the API server use host networking instead. DEL has nothing to undo: the
interfaces go with the namespace. containerd runs it as ``<cni bin dir>/devcluster-isolated``,
a two-line wrapper that execs this module with devcluster's Python.

Addresses come from ``subnet`` in the network config, handed out in order from a counter file
under ``dataDir`` (locked, so concurrent ADDs never share one); the range wraps around after
its last host, by which time the earliest pods are long gone.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "next_address"]

CNI_VERSION = "1.0.0"
SUPPORTED = ["0.4.0", "1.0.0", "1.1.0"]


def next_address(network: ipaddress.IPv4Network, counter: Path) -> ipaddress.IPv4Interface:
    """The next free host address of ``network``, counted in ``counter`` under a file lock."""
    counter.parent.mkdir(parents=True, exist_ok=True)
    with counter.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        last = int(text) if text else 0
        hosts = network.num_addresses - 2  # network and broadcast addresses
        index = last % hosts + 1
        f.seek(0)
        f.truncate()
        f.write(str(index))
    return ipaddress.IPv4Interface(f"{network.network_address + index}/{network.prefixlen}")


def _in_netns(netns: str, *argv: str) -> None:
    subprocess.run(["nsenter", f"--net={netns}", *argv], check=True, capture_output=True,
                   text=True)


def _add(config: dict[str, Any], netns: str, ifname: str) -> dict[str, Any]:
    network = ipaddress.IPv4Network(config["subnet"])
    address = next_address(network, Path(config["dataDir"]) / "last-address")
    _in_netns(netns, "ip", "link", "add", ifname, "type", "veth", "peer", "name", f"{ifname}-peer")
    _in_netns(netns, "ip", "addr", "add", str(address), "dev", ifname)
    for link in ("lo", f"{ifname}-peer", ifname):
        _in_netns(netns, "ip", "link", "set", link, "up")
    return {
        "cniVersion": config.get("cniVersion", CNI_VERSION),
        "interfaces": [{"name": ifname, "sandbox": netns}],
        "ips": [{"address": str(address), "interface": 0}],
    }


def _error(code: int, msg: str, details: str = "") -> int:
    json.dump({"cniVersion": CNI_VERSION, "code": code, "msg": msg, "details": details},
              sys.stdout)
    return 1


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        json.dump({"cniVersion": CNI_VERSION, "supportedVersions": SUPPORTED}, sys.stdout)
        return 0
    config = json.load(sys.stdin)
    if command == "ADD":
        try:
            result = _add(config, os.environ["CNI_NETNS"], os.environ.get("CNI_IFNAME", "eth0"))
        except subprocess.CalledProcessError as e:
            return _error(11, f"devcluster-isolated: {' '.join(e.cmd)} failed", e.stderr)
        except KeyError as e:
            return _error(4, f"devcluster-isolated: {e.args[0]} is not set")
        json.dump(result, sys.stdout)
        return 0
    if command in ("DEL", "CHECK", "GC", "STATUS"):
        return 0
    return _error(4, f"devcluster-isolated: unknown CNI_COMMAND {command!r}")


if __name__ == "__main__":
    sys.exit(main())
