"""The os_hardening role without a host: its settings against the DevSec baseline's own values, its
rendered files, the probe and the setuid/world-writable review on a scratch tree, lynis explanations.

Why offline: `./lab verify` proves the live host; these prove the role asks for what the baseline
expects (a wrong value in defaults/main.yml fails here before any host is touched), and that the
scripts the role runs report what they see, on files made for the purpose.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from seclab.report import lynis
from tests.infra import test_linux

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "os_hardening"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render(name: str, **extra: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True, keep_trailing_newline=True)
    return env.get_template(name).render(**{**DEFAULTS, **extra})


def test_role_sets_every_devsec_kernel_parameter_to_an_accepted_value() -> None:
    sysctls = {s["key"]: s for s in DEFAULTS["os_hardening_sysctls"]}
    missing, wrong = [], []
    for control, pairs in test_linux.DEVSEC_SYSCTL.items():
        for key, ok in pairs:
            if control == "sysctl-29":  # DevSec's input is 0 (the kernel default): nothing to set
                continue
            if key not in sysctls:
                missing.append(f"{control} {key}")
            elif sysctls[key]["value"] not in ok:
                wrong.append(f"{control} {key}={sysctls[key]['value']} (DevSec {sorted(ok)})")
    for key, ok in test_linux.LYNIS_SYSCTL:
        if key not in sysctls or sysctls[key]["value"] not in ok:
            wrong.append(f"lynis {key}")
    assert not missing and not wrong, f"missing: {missing}; wrong: {wrong}"
    assert all(s.get("control") and s.get("why") for s in sysctls.values()), "every parameter names its control and reason"


def test_rendered_sysctl_file_persists_every_parameter_and_never_forwarding() -> None:
    text = render("sysctl.conf.j2", ansible_managed="test")
    for s in DEFAULTS["os_hardening_sysctls"]:
        assert re.search(rf"^{re.escape(s['key'])} = {re.escape(s['value'])}$", text, re.MULTILINE), s["key"]
    assert "ip_forward" not in text and ".forwarding" not in text


def test_rendered_modprobe_file_disables_devsec_filesystems_except_the_mounted_one() -> None:
    plan = {fs: ("mounted here right now" if fs == "squashfs" else "") for fs in DEFAULTS["os_hardening_blacklist_filesystems"]}
    text = render("modprobe.conf.j2", ansible_managed="test", os_hardening_fs_plan=plan)
    for fs in test_linux.DEVSEC_FILESYSTEMS:
        line = f"install {fs} /bin/true"
        assert (line in text) is (fs != "squashfs"), fs
    assert "# squashfs: left loadable (mounted here right now)" in text
    for m in ("dccp", "sctp", "rds", "tipc", "usb-storage"):
        assert f"install {m} /bin/true" in text


def test_rendered_audit_rules_watch_identity_time_and_privileged_programs() -> None:
    watches = {w["path"]: True for w in DEFAULTS["os_hardening_audit_watches"]}
    watches["/etc/sudoers"] = False  # absent on the host: left out (auditctl refuses a missing path)
    text = render("audit.rules.j2", ansible_managed="test", os_hardening_probe={"paths": watches},
                  os_hardening_modes={"suid_allowed": ["/usr/bin/su"]})
    assert "-w /etc/shadow -p wa -k identity" in text and "-w /etc/sudoers " not in text
    assert re.search(r"-S adjtimex,settimeofday,clock_settime -k time-change", text)
    assert "-F path=/usr/bin/su -F perm=x -F auid>=1000 -F auid!=unset -k privileged" in text


def test_sshd_settings_follow_lynis() -> None:
    text = render("sshd.conf.j2", ansible_managed="test")
    for line in ("PermitRootLogin prohibit-password", "PasswordAuthentication no", "MaxAuthTries 3",
                 "AllowTcpForwarding no", "X11Forwarding no", "AllowAgentForwarding no", "LogLevel VERBOSE"):
        assert line in text.splitlines(), line


def test_suid_lists_do_not_overlap_and_cover_devsec_blacklist() -> None:
    allow = {e["path"] for e in DEFAULTS["os_hardening_suid_allowlist"]}
    remove = {e["path"] for e in DEFAULTS["os_hardening_suid_remove"]}
    assert not allow & remove
    assert not allow & set(test_linux.DEVSEC_SUID_BLACKLIST), "a DevSec-blacklisted program is on the allowlist"
    assert all(e.get("why") for e in DEFAULTS["os_hardening_suid_allowlist"] + DEFAULTS["os_hardening_suid_remove"])


def test_login_defs_and_lockout_match_devsec_and_asvs() -> None:
    d = DEFAULTS["os_hardening_login_defs"]
    assert (d["UMASK"], d["PASS_MAX_DAYS"], d["PASS_MIN_DAYS"], d["PASS_WARN_AGE"]) == ("027", "60", "7", "7")
    assert (d["LOGIN_RETRIES"], d["LOGIN_TIMEOUT"]) == ("5", "60")
    assert DEFAULTS["os_hardening_pwquality"]["minlen"] >= 12  # ASVS 4.0.3 V2.1.1
    assert 1 <= DEFAULTS["os_hardening_faillock"]["deny"] <= 5 and "even_deny_root" not in DEFAULTS["os_hardening_faillock"]


def run_script(name: str, args: dict[str, Any]) -> dict[str, Any]:
    argfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"seclab-test-{os.getpid()}-{name}.json"
    argfile.write_text(json.dumps(args))
    try:
        proc = subprocess.run([sys.executable, str(ROLE / "files" / name), str(argfile)], capture_output=True,
                              text=True, check=True, timeout=120)
    finally:
        argfile.unlink()
    return json.loads(proc.stdout)


def test_probe_reports_kernel_parameters_paths_and_audit() -> None:
    facts = run_script("probe.py", {"sysctls": ["kernel.randomize_va_space", "kernel.no_such_parameter"],
                                    "paths": ["/etc/passwd", "/etc/no-such-file"]})
    assert facts["sysctl"]["kernel.no_such_parameter"] is None
    assert facts["sysctl"]["kernel.randomize_va_space"] in ("0", "1", "2")
    assert facts["paths"] == {"/etc/passwd": True, "/etc/no-such-file": False}
    assert isinstance(facts["proc_sys_readonly"], bool) and isinstance(facts["audit"]["ok"], bool)
    if not facts["audit"]["ok"]:
        assert facts["audit"]["reason"], "an unusable audit subsystem must say why"


@pytest.mark.skipif(os.geteuid() != 0, reason="setting a setuid bit on a scratch file needs root")
def test_review_finds_world_writable_and_unlisted_setuid(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    ww = tmp_path / "etc" / "open.conf"
    ww.write_text("x")
    ww.chmod(0o666)
    opendir = tmp_path / "etc" / "dropbox"
    opendir.mkdir()
    opendir.chmod(0o777)
    sticky = tmp_path / "etc" / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    setid = [tmp_path / name for name in ("allowed", "rogue", "remove-me")]
    for f in setid:
        f.write_text("#!/bin/sh\n")
        f.chmod(0o4755)
    try:
        out = run_script("modes.py", {"system_paths": [str(tmp_path / "etc")], "root": str(tmp_path), "prune": [],
                                      "allow": [str(tmp_path / "allowed")], "remove": [str(tmp_path / "remove-me")],
                                      "apply": False})
    finally:
        for f in setid:  # never leave setuid files behind: the host's own review (os-06) would flag them
            f.chmod(0o755)
    assert out["world_writable"] == sorted([str(ww), str(opendir)])  # the sticky directory is fine
    assert out["suid_allowed"] == [str(tmp_path / "allowed")]
    assert out["suid_unlisted"] == [str(tmp_path / "rogue")]
    assert out["suid_removed"] == [str(tmp_path / "remove-me")] and not out["changed"]
    assert ww.stat().st_mode & 0o777 == 0o666, "apply=false changes nothing"


def test_review_resolves_compilers_to_their_real_files(tmp_path: Path) -> None:
    real = tmp_path / "x86_64-linux-gnu-gcc-12"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    for name in ("gcc", "cc"):
        (tmp_path / name).symlink_to(real.name)
    out = run_script("modes.py", {"system_paths": [], "root": str(tmp_path), "prune": [], "allow": [], "remove": [],
                                  "root_only": ["cc", "gcc", "clang"], "path": str(tmp_path), "apply": False})
    assert out["root_only"] == [str(real)] and not out["changed"]
    assert real.stat().st_mode & 0o777 == 0o755, "apply=false changes nothing"


def test_lynis_findings_are_explained_or_counted() -> None:
    data = lynis.parse((Path(__file__).resolve().parents[1] / "seclab" / "report" / "data" / "lynis-report.dat").read_text())
    explained = [{"id": "PKGS-7392", "why": "w1", "reference": "r"}, {"id": "FILE-6310", "match": "/home", "why": "w2"},
                 {"id": "AUTH-9230", "match": "no such text", "why": "never matches"}]
    out = lynis.explain(data, explained)
    assert out["unexplained"] == 3  # FIRE-4512, AUTH-9230 (match misses), HRDN-7230
    by_id = {e["id"]: e for e in out["warning_list"] + out["suggestion_list"]}
    assert by_id["PKGS-7392"]["why"] == "w1" and by_id["FILE-6310"]["explained"] and not by_id["AUTH-9230"]["explained"]


def test_every_lynis_explanation_is_complete() -> None:
    entries = lynis.load_explained()
    assert entries, "tests/infra/lynis_explained.yml is missing or empty"
    for e in entries:
        assert (e["id"] == "LYNIS" or re.fullmatch(r"[A-Z]{3,5}-\d{4}", e["id"])) and e.get("why") and e.get("reference"), e
