"""A setting changed in lab.yml reaches the running services after `./lab up` (issue 11, item 6).

The failure this guards against: `./lab up` rendered the new value into /etc/seclab/lab.json
(changed=1) while the API and the worker kept the value they had read at start, until someone
restarted them by hand. Here the real CLI provisions the real lab twice: once with
`limits.page_size_max` raised (a value the API enforces on every list request, so its behaviour
shows which value it holds) and once with the original file, which must restore the old behaviour.
The worker and Flower read the same file at start: their supervisord PIDs must change with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

import labdef
from labdef.tokens import get_access_token
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.late, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]


def _lab_up(lab_file: Path) -> str:
    env = {**os.environ, "SECLAB_LAB_FILE": str(lab_file)}
    proc = subprocess.run([sys.executable, "-m", "seclab.cli", "up"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1500, check=False)
    assert proc.returncode == 0, f"./lab up failed: {(proc.stdout + proc.stderr)[-2000:]}"
    return proc.stdout + proc.stderr


def _pid(program: str) -> int:
    out = subprocess.run(["supervisorctl", "pid", program], capture_output=True, text=True, check=False).stdout
    return int(out.strip()) if out.strip().isdigit() else 0


def _list_status(lab: labdef.LabDefinition, limit: int) -> int:
    token = get_access_token(lab, "alice")
    ca = Path(lab.paths.pki) / "ca" / "ca-bundle.crt"
    r = httpx.get(f"{lab.edge_url}/api/v1/conversations", params={"limit": limit},
                  headers={"Authorization": f"Bearer {token}"}, verify=str(ca), timeout=30)
    return r.status_code


@pytest.fixture(scope="module")
def lab() -> Iterator[labdef.LabDefinition]:
    lab = labdef.load()
    need(Path(lab.paths.etc, "lab.json").is_file() and os.geteuid() == 0, "the provisioned lab, as root")
    need(_pid("app") > 0 and _pid("worker") > 0, "the API and the worker under supervisord")
    yield lab


def test_changed_setting_reaches_api_and_worker(lab: labdef.LabDefinition, tmp_path: Path) -> None:
    original = REPO / "lab.yml"
    raised = lab.limits.page_size_max + 7
    assert _list_status(lab, raised) == 422, "precondition: the API refuses a page above page_size_max"
    data = yaml.safe_load(original.read_text(encoding="utf-8"))
    data.setdefault("limits", {})["page_size_max"] = raised
    changed = tmp_path / "lab.yml"
    changed.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    pids = {p: _pid(p) for p in ("app", "worker", "flower")}
    try:
        _lab_up(changed)
        assert _list_status(lab, raised) == 200, "the API still enforces the old page_size_max"
        after = {p: _pid(p) for p in pids}
        assert all(after[p] and after[p] != pids[p] for p in pids), f"not restarted onto lab.json: {pids} -> {after}"
    finally:
        _lab_up(original)
    assert _list_status(lab, raised) == 422, "restoring lab.yml did not restore the API's limit"
