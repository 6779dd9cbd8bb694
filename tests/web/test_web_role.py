"""The web role's contract: every variable documented (defaults + argument_specs), the build never as
root beyond unpacking, and the edge rendering the page's routes and CSP from the role's facts."""

from __future__ import annotations

from pathlib import Path

import yaml

import labdef
from edge.render import render
from tests.playbooks.test_playbooks import MAGIC, _defaults_with_comments, _role_variables

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "playbooks" / "roles" / "web"


def test_every_variable_is_documented() -> None:
    used, declared = _role_variables(ROLE)
    defaults, commented = _defaults_with_comments(ROLE)
    facts = {"web_export_dir", "web_script_hashes", "web_pages"}  # set here, for the edge role
    used = {v for v in used if v not in MAGIC and not v.startswith("ansible_")}
    assert not sorted(used - defaults - declared - facts), "variables used but not in defaults/main.yml"
    assert defaults == commented, f"defaults without a comment line: {sorted(defaults - commented)}"
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(specs) == defaults


def test_third_party_code_never_runs_as_root() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    steps = [t for block in tasks for t in block.get("block", [block])]
    by_name = {t["name"]: t for t in steps}
    ci = next(t for n, t in by_name.items() if "npm ci" in n)
    assert "--ignore-scripts" in ci["ansible.builtin.command"]["cmd"]
    build = next(t for n, t in by_name.items() if n.startswith("Build the static export"))
    argv = build["ansible.builtin.command"]["argv"]
    assert argv.startswith("{{ ['runuser', '-u', web_build_user, '--', 'env', '-i'"), argv


def test_edge_serves_the_pages_with_the_hashed_csp(tmp_path: Path) -> None:
    lab = labdef.load(ROOT / "lab.yml")
    conf = render(lab, tmp_path, edge_pki_dir="/tmp/pki", edge_waf_enabled=False, edge_web_root="/opt/seclab/web",
                  edge_web_pages=["/index.html", "/callback.html"], edge_web_script_hashes=["'sha256-AAAA'"]).read_text()
    assert "location = / {" in conf and "location = /callback {" in conf and "location ^~ /_next/static/ {" in conf
    assert "try_files /callback.html =404;" in conf
    page_csp = [ln for ln in conf.splitlines() if ln.strip().startswith('"/callback" ')]
    assert page_csp and "script-src 'self' 'sha256-AAAA';" in page_csp[0]
    for needed in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "connect-src 'self'"):
        assert needed in page_csp[0]
    assert "unsafe" not in page_csp[0]


def test_without_the_web_role_the_edge_serves_no_page(tmp_path: Path) -> None:
    conf = render(labdef.load(ROOT / "lab.yml"), tmp_path, edge_pki_dir="/tmp/pki", edge_waf_enabled=False).read_text()
    assert "location = / {" not in conf and "/_next/" not in conf
