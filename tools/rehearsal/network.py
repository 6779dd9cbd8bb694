"""A sandbox's network: a veth pair, a /30 of its own, NAT to the outside through nftables.

Sandbox n gets 10.231.n.0/30: the host end `sbxn` is .1, the sandbox's `eth0` is .2 with the default
route via .1. One nftables table per sandbox (`ip seclab_sbx_n`) masquerades its traffic out of the
host and rejects anything it sends to the host itself or to another sandbox: the lab inside reaches
the package registries as the host does, and its ports never meet the host's lab. ip_forward is set
while any sandbox exists and put back to its previous value when the last one goes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .common import HOME, RehearsalError, run, say

PREFIX = "10.231"
MAX_INDEX = 250
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SAVED_FORWARD = HOME / "ip_forward.saved"
TABLE_RE = re.compile(r"^table ip seclab_sbx_(\d+)\b", re.MULTILINE)


def ifname(index: int) -> str:
    return f"sbx{index}"


def addresses(index: int) -> tuple[str, str, str]:
    """(host address, sandbox address, network) of sandbox `index`, each /30."""
    if not 1 <= index <= MAX_INDEX:
        raise ValueError(f"sandbox index {index} outside 1..{MAX_INDEX}")
    return f"{PREFIX}.{index}.1", f"{PREFIX}.{index}.2", f"{PREFIX}.{index}.0/30"


def free_index(used: set[int]) -> int:
    for i in range(1, MAX_INDEX + 1):
        if i not in used:
            return i
    raise RehearsalError(f"all {MAX_INDEX} sandbox subnets are in use: destroy some")


def table(index: int) -> str:
    return f"seclab_sbx_{index}"


def ruleset(index: int) -> str:
    """The nftables table of sandbox `index` (applied with `nft -f -`)."""
    dev = ifname(index)
    _, _, net = addresses(index)
    return f"""table ip {table(index)} {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {net} oifname != "{dev}" masquerade
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{dev}" reject comment "the sandbox never reaches the host's own services (the host lab)"
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{dev}" oifname "sbx*" reject comment "sandboxes do not reach one another"
  }}
}}
"""


def ensure_nft() -> None:
    if shutil.which("nft") is None:
        say("installing nftables (apt)")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "nftables"])


def tables_present() -> set[int]:
    res = subprocess.run(["nft", "list", "tables"], check=False, text=True, capture_output=True)
    return {int(m) for m in TABLE_RE.findall(res.stdout)} if res.returncode == 0 else set()


def _enable_forwarding() -> None:
    current = IP_FORWARD.read_text().strip()
    if not SAVED_FORWARD.exists():
        SAVED_FORWARD.write_text(current + "\n")
    if current != "1":
        IP_FORWARD.write_text("1\n")


def _restore_forwarding(others_left: bool) -> None:
    if others_left or not SAVED_FORWARD.exists():
        return
    IP_FORWARD.write_text(SAVED_FORWARD.read_text())
    SAVED_FORWARD.unlink()


def up(index: int, pid: int) -> None:
    """Create the veth pair into the namespace of `pid`, address both ends, route, NAT."""
    ensure_nft()
    dev = ifname(index)
    host, inside, _ = addresses(index)
    down(index, others_left=True)  # leftovers of a crashed run with the same index
    run(["ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", str(pid)], quiet=True)
    run(["ip", "addr", "add", f"{host}/30", "dev", dev], quiet=True)
    run(["ip", "link", "set", dev, "up"], quiet=True)
    ns = ["nsenter", "--target", str(pid), "--net", "--"]
    run(ns + ["ip", "link", "set", "lo", "up"], quiet=True)
    run(ns + ["ip", "addr", "add", f"{inside}/30", "dev", "eth0"], quiet=True)
    run(ns + ["ip", "link", "set", "eth0", "up"], quiet=True)
    run(ns + ["ip", "route", "add", "default", "via", host], quiet=True)
    run(["nft", "-f", "-"], input_text=ruleset(index), quiet=True)
    _enable_forwarding()


def down(index: int, *, others_left: bool) -> None:
    """Remove what up() made on the host (the sandbox end dies with its namespace)."""
    subprocess.run(["ip", "link", "del", ifname(index)], check=False, capture_output=True)
    if shutil.which("nft"):
        subprocess.run(["nft", "delete", "table", "ip", table(index)], check=False, capture_output=True)
    _restore_forwarding(others_left)
