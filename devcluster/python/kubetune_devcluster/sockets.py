"""Read the sockets of local processes from /proc, to prove that devcluster dials only loopback."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Connection", "connections", "processes_matching", "tree"]

_LISTEN = "0A"
_TABLES = ("tcp", "tcp6", "udp", "udp6")


@dataclass(frozen=True)
class Connection:
    pid: int
    table: str
    local: str
    remote: str
    state: str

    @property
    def loopback(self) -> bool:
        """Whether the peer is on loopback, or there is no peer (listening or unconnected)."""
        host = self.remote.rsplit(":", 1)[0].strip("[]")
        addr = ipaddress.ip_address(host)
        if addr.is_unspecified or self.state == _LISTEN:
            return True
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return addr.is_loopback


def _decode(hex_addr: str) -> str:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
        return f"{ip}:{int(port, 16)}"
    # IPv6 in /proc is four little-endian 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{ipaddress.IPv6Address(words)}]:{int(port, 16)}"


def _inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except OSError:
        pass
    return out


def connections(pids: Iterable[int]) -> list[Connection]:
    """Every inet socket held by ``pids``, with its peer."""
    found = []
    for pid in pids:
        inodes = _inodes(pid)
        if not inodes:
            continue
        for table in _TABLES:
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if cols[9] in inodes:
                    found.append(Connection(pid, table, _decode(cols[1]), _decode(cols[2]),
                                            cols[3]))
    return found


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        out[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree(roots: Iterable[int]) -> set[int]:
    """``roots`` and all their descendants that are alive now."""
    parents = _parents()
    found = {pid for pid in roots if pid in parents}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def processes_matching(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid():
            out.append(int(entry))
    return out
