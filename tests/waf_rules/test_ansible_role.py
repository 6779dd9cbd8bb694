"""The Ansible role renders the same files as waf_rules/render.py (one copy of each template)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import need
from waf_rules.render import TEMPLATES, render

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = Path(REPO / ".venv" / "bin" / "ansible-playbook")


def test_role_renders_what_render_py_renders(lab: Any, tmp_path: Path) -> None:
    playbook_bin = str(ANSIBLE) if ANSIBLE.exists() else shutil.which("ansible-playbook")
    need(bool(playbook_bin), "ansible-playbook (the dev extra)")
    assert playbook_bin
    data = lab.model_dump(mode="json")
    data["paths"].update(etc=str(tmp_path / "etc"), logs=str(tmp_path / "logs"), data=str(tmp_path / "data"))
    # The logrotate file too goes to tmp: this play must not touch the live lab's /etc/logrotate.d.
    (tmp_path / "vars.json").write_text(json.dumps({"lab": data, "waf_logrotate_file": str(tmp_path / "logrotate-waf")}))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        f"  vars_files: [{tmp_path / 'vars.json'}]\n  roles: [waf]\n"
    )
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "playbooks" / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    run = subprocess.run([playbook_bin, "-i", "localhost,", "--skip-tags", "packages",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]

    ref = tmp_path / "ref"
    render(lab, ref, tmp_path / "logs" / "waf" / "modsec_audit.json", tmp_dir=str(tmp_path / "data" / "waf"),
           conf_dir=str(tmp_path / "etc" / "waf"))
    for name in TEMPLATES.values():
        ours = (ref / name).read_text().splitlines()[1:]  # line 1: the "managed by" banner differs
        theirs = (tmp_path / "etc" / "waf" / name).read_text().splitlines()[1:]
        assert theirs == ours, name
    rotate = (tmp_path / "logrotate-waf").read_text()
    assert f"{tmp_path}/logs/waf/modsec_audit.json {{" in rotate and "copytruncate" in rotate
    snippet = tmp_path / "etc" / "waf" / "nginx" / "problem-pages.conf"
    assert snippet.read_text() == (ref / "nginx" / "problem-pages.conf").read_text()
