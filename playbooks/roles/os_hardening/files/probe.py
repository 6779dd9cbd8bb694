#!/usr/bin/python3
"""What this machine can take (os_hardening role): printed as one JSON object, changes nothing.

Why a probe: a container or sandbox shares the host's kernel and mounts /proc/sys read-only, a
kernel may lack a parameter (no Yama, no SysRq, no loadable modules) or refuse auditing outside the
initial PID namespace. The role decides "apply" or "not applicable: <reason>" from these facts, so a
setting is never skipped silently and never left failing.

Usage: probe.py PATH_TO_ARGS_JSON  ({"sysctls": [...], "paths": [...]})
"""

import json
import os
import shutil
import subprocess
import sys


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return None


def proc_sys_readonly() -> bool:
    try:
        return bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    except OSError:
        return True


def mounted_types() -> list[str]:
    types = set()
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) > 2:
            types.add(parts[2])
    return sorted(types)


def audit_status() -> dict[str, object]:
    """Does the kernel accept audit requests from here? (auditctl -s talks netlink to it.)"""
    exe = shutil.which("auditctl")
    if exe is None:
        return {"ok": False, "reason": "auditctl is not installed"}
    proc = subprocess.run([exe, "-s"], capture_output=True, text=True, check=False)
    if proc.returncode == 0 and "enabled" in proc.stdout:
        return {"ok": True, "reason": "", "status": " ".join(proc.stdout.split())[:300]}
    err = " ".join((proc.stderr or proc.stdout).split())[:200] or f"auditctl -s exited {proc.returncode}"
    return {"ok": False, "reason": f"the kernel refuses audit requests here ({err})"}


def login_homes() -> list[str]:
    """Home directories of accounts with a login shell, as lynis HOME-9304 selects them."""
    homes = []
    try:
        with open("/etc/passwd", encoding="utf-8") as fh:
            rows = [ln.rstrip("\n").split(":") for ln in fh if ln.count(":") >= 6]
    except OSError:
        return []
    for name, *_, home, shell in rows:
        if name in ("daemon", "git", "halt", "root", "shutdown", "sync") or shell.endswith(("/false", "/nologin")):
            continue
        if home not in ("/", "") and os.path.isdir(home) and home not in homes:
            homes.append(home)
    return sorted(homes)


def main() -> None:
    args = {}
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as fh:
            args = json.load(fh)
    facts = {
        "proc_sys_readonly": proc_sys_readonly(),
        "sysctl": {k: read(sysctl_path(k)) for k in args.get("sysctls", [])},
        "efi": os.path.isdir("/sys/firmware/efi"),
        "mounted_fs": mounted_types(),
        "kernel_modules": os.path.exists("/proc/modules"),
        "sshd": os.path.exists("/usr/sbin/sshd"),
        "paths": {p: os.path.lexists(p) for p in args.get("paths", [])},
        "login_homes": login_homes(),
        "audit": audit_status(),
    }
    print(json.dumps(facts, sort_keys=True))


if __name__ == "__main__":
    main()
