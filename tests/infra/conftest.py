"""Compliance checks of a provisioned lab host (pytest-testinfra; `./lab verify`).

Why testinfra: the same test runs against this machine (`local://`, the default) or any inventory
host (`--hosts ssh://root@lab1`), because every fact is read through the `host` fixture (files,
commands, sockets) and never through Python's own `os` or `open`.

Rules every test here follows:
- its name carries its control id (`test_nginx_05_...` -> nginx-05) and the id is in controls.yml;
  collection fails otherwise, so the report can never show a check that cites nothing;
- every control checks what `./lab up` provisions; nothing is marked "not yet provisioned" any more
  (those run-time xfails were removed once site.yml ran every role): a missing piece fails;
- a deviation from a baseline is a replacement check whose waiver (waivers.yml) must exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import labdef

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONTROL_RE = re.compile(r"^test_(nginx|postgres|redis|keys|net|proc|tls|os|sysctl|package|host)_(\d{2}[a-z]?)(?:_|$)")

def control_of(name: str) -> str | None:
    """`test_nginx_05_server_tokens[...]` -> `nginx-05`."""
    m = CONTROL_RE.match(name)
    return f"{m.group(1)}-{m.group(2)}" if m else None


def load_controls() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((HERE / "controls.yml").read_text(encoding="utf-8"))["controls"]


def load_waivers() -> dict[str, Any]:
    return yaml.safe_load((HERE / "waivers.yml").read_text(encoding="utf-8"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test here `infra` (so `-m infra` selects them) and insist on a known control id."""
    controls = load_controls()
    bad: list[str] = []
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.infra)
        cid = control_of(item.name)
        if cid is None or cid not in controls:
            bad.append(item.nodeid)
    if bad:
        raise pytest.UsageError(f"tests without a known control id (tests/infra/controls.yml): {bad}")


@pytest.fixture(scope="session")
def lab() -> labdef.LabDefinition:
    """The lab definition (SECLAB_LAB_FILE or lab.yml): paths and ports come from here, never constants."""
    return labdef.load()


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="session")
def waivers() -> dict[str, Any]:
    return load_waivers()


@pytest.fixture(scope="session")
def waived(waivers: dict[str, Any]):
    """`waived("nginx-12", "prefer_server_ciphers")`: the waiver entry, or a failure if it is missing.

    A replacement check without its recorded waiver would be a silent deviation: that fails.
    """

    def _get(control: str, part: str) -> dict[str, Any]:
        for w in waivers.get("waivers", []):
            if w["control"] == control and part in w["part"]:
                return w
        pytest.fail(f"{control}: replacement check for {part!r} has no entry in tests/infra/waivers.yml")

    return _get


@pytest.fixture(scope="session")
def devsec_input(waivers: dict[str, Any], lab: labdef.LabDefinition):
    """The value of a DevSec profile input as chosen for this lab (waivers.yml `inputs`)."""

    def _get(control: str, name: str) -> str:
        for i in waivers.get("inputs", []):
            if i["control"] == control and i["input"] == name:
                return str(_dig(lab, i["from_lab"])) if "from_lab" in i else str(i["value"])
        pytest.fail(f"{control}: input {name!r} is not set in tests/infra/waivers.yml")

    return _get


def role_default(role: str, key: str) -> Any:
    """A literal default of an Ansible role (so paths like the Redis config are not copied here)."""
    data = yaml.safe_load((REPO / "playbooks" / "roles" / role / "defaults" / "main.yml").read_text())
    value = data[key]
    if isinstance(value, str) and "{{" in value:
        raise ValueError(f"{role}/{key} is a template ({value}); resolve it in the test")
    return value


def own_processes(host: Any) -> str:
    """`ps -eo args=` limited to this host's PID namespace, one command line per line. A host that runs
    rehearsal sandboxes sees their processes too; they belong to other, isolated labs, not to this one."""
    me = host.run("ps -o pidns= -p $$").stdout.strip()
    rows = (line.strip().split(None, 1) for line in host.run("ps -eww -o pidns=,args=").stdout.splitlines())
    return "\n".join(r[1] for r in rows if len(r) == 2 and r[0] == me)


def sh(*argv: str) -> str:
    return " ".join(shlex.quote(a) for a in argv)


@pytest.fixture(scope="module")
def psql(host: Any, lab: labdef.LabDefinition):
    """Run SQL as the postgres superuser over the unix socket (peer), return trimmed stdout lines."""
    sock = role_default("postgresql", "postgresql_socket_dir")

    def _run(sql: str, db: str = "postgres") -> list[str]:
        cmd = sh("runuser", "-u", "postgres", "--", "psql", "-h", sock, "-p", str(lab.ports.postgres),
                 "-d", db, "-AtX", "-v", "ON_ERROR_STOP=1", "-c", sql)
        out = host.run(cmd)
        assert out.rc == 0, f"psql failed ({out.rc}): {out.stderr.strip()}"
        return [line for line in out.stdout.splitlines() if line.strip()]

    return _run
