"""Host-wide checks: secrets and keys on disk, listening sockets, supervised programs.

Why these three: they are what a lab-wide mistake looks like from the outside — a key readable by
everyone, a service that slipped onto 0.0.0.0, a program that died and is not restarted — and none of
them belongs to one role.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra import net_checks
from tests.infra.conftest import load_waivers, sh

FILE_MODES = {0o600, 0o640, 0o400, 0o440}
"""Secret and key files: owner read(-write), optionally group read, never others (DEVELOPING.md)."""
DIR_MODES = {0o700, 0o710, 0o750}
"""Secret and key directories: 0700, or 0710 so a group (ssl-cert, seclab) may traverse to its own file.
0750 is tolerated only for the PKI's public parts; see keys-03."""


def tree(host: Any, root: str) -> list[tuple[str, int, str, str, str]]:
    """Every entry under `root` as (type f/d/l, mode, owner, group, path), via find on the host."""
    out = host.run(sh("find", root, "-printf", r"%y %m %u %g %p\n"))
    if out.rc != 0:
        return []
    rows = []
    for line in out.stdout.splitlines():
        kind, mode, user, group, path = line.split(" ", 4)
        rows.append((kind, int(mode, 8), user, group, path))
    return rows


def test_keys_01_secret_files(host: Any, lab: Any) -> None:
    """Every file under lab.paths.secrets is 0600/0640 (or read-only variants), nothing for others."""
    rows = tree(host, lab.paths.secrets)
    assert rows, f"{lab.paths.secrets} is missing: the secrets role has not run"
    bad = [f"{p} {oct(m)} {u}:{g}" for k, m, u, g, p in rows if k == "f" and m not in FILE_MODES]
    links = [p for k, *_, p in rows if k == "l"]
    assert not bad and not links, f"bad modes: {bad}; symlinks: {links}"


def test_keys_02_private_keys(host: Any, lab: Any) -> None:
    """Every file under lab.paths.pki/private is 0600/0640, nothing for others (ASVS 4.0.3 V6.4.1)."""
    rows = tree(host, f"{lab.paths.pki}/private")
    assert rows, f"{lab.paths.pki}/private is missing"
    bad = [f"{p} {oct(m)} {u}:{g}" for k, m, u, g, p in rows if k == "f" and m not in FILE_MODES]
    assert not bad, f"bad modes: {bad}"
    keys = [p for k, *_, p in rows if k == "f" and p.endswith(".key")]
    assert keys, "no private key in private/"


@pytest.mark.parametrize("where", ["secrets", "pki-private"])
def test_keys_03_directories(host: Any, lab: Any, where: str) -> None:
    """Directories holding secrets or keys are 0700 or 0710 (traverse-only for the reading group)."""
    root = lab.paths.secrets if where == "secrets" else f"{lab.paths.pki}/private"
    rows = tree(host, root)
    assert rows, f"{root} is missing"
    bad = [f"{p} {oct(m)} {u}:{g}" for k, m, u, g, p in rows if k == "d" and m not in {0o700, 0o710}]
    assert not bad, f"directories not 0700/0710: {bad}"


def _proc_text(host: Any, pid: int, name: str) -> str | None:
    """/proc/<pid>/<name> as text (NULs as spaces), None when it cannot be read."""
    out = host.run(sh("cat", f"/proc/{pid}/{name}"))
    return out.stdout.replace("\0", " ").strip() if out.rc == 0 else None


def test_net_01_only_edge_beyond_loopback(host: Any, lab: Any) -> None:
    """Nothing but the edge (nginx on ports.edge_https / edge_http) listens on a non-loopback address
    (ARCHITECTURE.md; ASVS 4.0.3 V1.4.1). Any other listener is a finding, whoever owns it, unless
    waivers.yml names it as a platform listener and it matches on address, port, process and PID."""
    edge_ports = {lab.ports.edge_https, lab.ports.edge_http}
    found = net_checks.parse_ss(host.run("ss -Htlnp").stdout)
    assert found, "ss listed no TCP listener at all"
    bad, _waived = net_checks.exposed(
        found, edge_ports, net_checks.listener_waivers(load_waivers()),
        comm=lambda pid: _proc_text(host, pid, "comm"), cmdline=lambda pid: _proc_text(host, pid, "cmdline"),
        lab_ports=lab.ports.model_dump().values())
    assert not bad, f"listening beyond loopback: {bad} (a platform listener needs a net-01 waiver in waivers.yml)"


# Programs every provisioned lab runs.
EXPECTED_PROGRAMS: tuple[str, ...] = ("postgresql", "redis", "app", "edge", "idp", "prometheus", "alertmanager")


def supervised(host: Any) -> dict[str, str]:
    """`supervisorctl status` -> {program: state}; empty when supervisord does not answer."""
    out = host.run("supervisorctl status")
    states = {}
    for line in out.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 2:
            states[cols[0]] = cols[1]
    return states


@pytest.mark.parametrize("program", sorted(EXPECTED_PROGRAMS))
def test_proc_01_program_running(host: Any, program: str) -> None:
    """Each lab program is configured under supervisord and RUNNING (or active as a systemd unit)."""
    if host.run("test -d /run/systemd/system").rc == 0:
        assert host.service(f"seclab-{program}").is_running
        return
    configured = host.file(f"/etc/supervisor/conf.d/{program}.conf").exists
    assert configured, f"no supervisord program {program}"
    state = supervised(host).get(program)
    assert state == "RUNNING", f"{program} is {state or 'unknown to supervisord'}"


def test_proc_01_all_programs_running(host: Any) -> None:
    """Every program supervisord knows is RUNNING: a lab program that stopped is a finding too."""
    states = supervised(host)
    assert states, "supervisord does not answer (supervisorctl status is empty)"
    bad = {p: s for p, s in states.items() if s != "RUNNING"}
    assert not bad, f"not running: {bad}"
