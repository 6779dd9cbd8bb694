"""net-01 without a host: parse `ss -Htlnp`, and match platform listeners against their waivers.

Why a waiver and not an ignore list: a hosting platform may run its own listener on the lab host (this
VM's agent is PID 1, `process_api`, on 0.0.0.0:2024). The lab cannot remove it, so the check names it in
tests/infra/waivers.yml with its reason, and matches it strictly: same address, same port, same owning
process name and PID. Anything else beyond loopback, that agent's name on another port included, fails.

When `ss` cannot name the owner (the platform's init hides its descriptors even from root), the waiver
must give the PID, `/proc/<pid>/comm` must be the waiver's process name, and the process's command line
must declare exactly that address:port: the listener is then tied to the process by its own arguments.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

OWNER_RE = re.compile(r'\("([^"]+)",pid=(\d+)')


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    owners: tuple[tuple[str, int], ...]  # (process name, pid); empty when ss cannot tell

    def label(self) -> str:
        names = ",".join(sorted({n for n, _ in self.owners})) or "?"
        return f"{self.address}:{self.port} ({names})"


def parse_ss(stdout: str) -> list[Listener]:
    """`ss -Htlnp` output -> listeners with every (name, pid) that holds the socket."""
    out = []
    for line in stdout.splitlines():
        cols = line.split()
        if len(cols) < 4:
            continue
        addr, port = cols[3].rsplit(":", 1)
        owners = tuple(sorted({(n, int(p)) for n, p in OWNER_RE.findall(line)}))
        out.append(Listener(addr.strip("[]").split("%")[0], int(port), owners))
    return out


def is_loopback(addr: str) -> bool:
    if addr in ("*", "0.0.0.0", "::"):
        return False
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    # Java binds IPv4 loopback as an IPv4-mapped IPv6 socket (::ffff:127.0.0.1): still loopback only.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def listener_waivers(waivers: dict[str, Any]) -> list[dict[str, Any]]:
    """The net-01 entries of waivers.yml that describe a platform listener (`listener:` block)."""
    return [w for w in waivers.get("waivers", []) if w.get("control") == "net-01" and w.get("listener")]


def matches(lst: Listener, waiver: dict[str, Any], *, comm: Callable[[int], str | None],
            cmdline: Callable[[int], str | None], lab_ports: Iterable[int]) -> bool:
    """True only when address, port, owning process name and PID all agree with the waiver."""
    w = waiver["listener"]
    if lst.port in set(lab_ports):
        return False  # a lab port is never a platform listener: the lab's own service must be fixed instead
    if lst.port != int(w["port"]) or lst.address != str(w["address"]):
        return False
    pid = w.get("pid")
    if lst.owners:
        return all(n == w["process"] and (pid is None or p == int(pid)) for n, p in lst.owners)
    if pid is None:
        return False  # an owner nobody can see is only waived with the PID to check it by
    if comm(int(pid)) != w["process"]:
        return False
    args = (cmdline(int(pid)) or "").split()
    bind = f"{lst.address}:{lst.port}"
    return any(a == bind or a.endswith(f"={bind}") for a in args)


def exposed(listeners: list[Listener], edge_ports: set[int], waivers: list[dict[str, Any]], *,
            comm: Callable[[int], str | None], cmdline: Callable[[int], str | None],
            lab_ports: Iterable[int]) -> tuple[list[str], list[str]]:
    """(findings, waived): every non-loopback listener that is neither nginx on an edge port nor waived."""
    bad, waived = [], []
    ports = list(lab_ports)
    for lst in listeners:
        if is_loopback(lst.address):
            continue
        if lst.port in edge_ports and lst.owners and {n for n, _ in lst.owners} == {"nginx"}:
            continue
        if any(matches(lst, w, comm=comm, cmdline=cmdline, lab_ports=ports) for w in waivers):
            waived.append(lst.label())
        else:
            bad.append(lst.label())
    return bad, waived
