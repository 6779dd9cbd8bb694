#!/usr/bin/python3
"""World-writable files in system paths and the SUID/SGID review (os_hardening role).

Why a script: both are searches over whole filesystems whose result decides what to change; `find`
does the walking (fast, -xdev keeps it on each filesystem), this script decides and reports one JSON
object the role records: what it fixed, what stays (allowlisted) and what nobody has reviewed yet.
Setuid bits are removed with dpkg-statoverride, so a package upgrade cannot bring them back; the same
mechanism makes the compilers root-only (lynis HRDN-7222).

Usage: modes.py PATH_TO_ARGS_JSON
  {"system_paths": [...], "allow": [paths], "remove": [paths], "prune": [dirs], "root": "/",
   "root_only": [command names], "path": "PATH to resolve them on", "apply": true|false}
"""

import json
import os
import shutil
import stat
import subprocess
import sys


def find(args: list[str]) -> list[str]:
    proc = subprocess.run(["find", *args, "-print0"], capture_output=True, text=True, check=False)
    return sorted(p for p in proc.stdout.split("\0") if p)


def world_writable(paths: list[str]) -> list[str]:
    roots = [p for p in paths if os.path.isdir(p)]
    if not roots:
        return []
    return find([*roots, "-xdev", "(", "(", "-type", "f", "-perm", "-0002", ")", "-o",
                 "(", "-type", "d", "-perm", "-0002", "!", "-perm", "-1000", ")", ")"])


def setid_files(root: str, prune: list[str]) -> list[str]:
    """Setuid/setgid files on the filesystem of `root`, outside other systems' roots (`prune`)."""
    expr: list[str] = []
    for p in prune:
        expr += ["-path", p, "-o"]
    if expr:
        return find([root, "-xdev", "(", *expr[:-1], ")", "-prune", "-o", "-type", "f", "-perm", "/6000"])
    return find([root, "-xdev", "-type", "f", "-perm", "/6000"])


def has_override(path: str) -> bool:
    proc = subprocess.run(["dpkg-statoverride", "--list", path], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def strip_setid(path: str) -> bool:
    """Remove setuid/setgid from `path` for good; True when something changed."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    changed = False
    if not has_override(path):
        import grp
        import pwd
        owner = pwd.getpwuid(st.st_uid).pw_name
        group = grp.getgrgid(st.st_gid).gr_name
        subprocess.run(["dpkg-statoverride", "--update", "--add", owner, group,
                        oct(mode & ~0o6000)[2:].rjust(4, "0"), path], check=True, capture_output=True)
        changed = True
    if stat.S_IMODE(os.stat(path).st_mode) & 0o6000:
        os.chmod(path, mode & ~0o6000)
        changed = True
    return changed


def restrict_to_root(path: str) -> bool:
    """Make `path` root:root 0750 for good (dpkg-statoverride); True when something changed."""
    changed = False
    if not has_override(path):
        subprocess.run(["dpkg-statoverride", "--update", "--add", "root", "root", "0750", path],
                       check=True, capture_output=True)
        changed = True
    st = os.stat(path)
    if st.st_uid != 0 or st.st_gid != 0 or stat.S_IMODE(st.st_mode) & 0o027:
        os.chown(path, 0, 0)
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o027)
        changed = True
    return changed


def compilers(names: list[str], search_path: str | None) -> list[str]:
    """The real files behind the compiler commands (`cc` -> /usr/bin/x86_64-linux-gnu-gcc-12)."""
    found = {os.path.realpath(p) for n in names if (p := shutil.which(n, path=search_path))}
    return sorted(found)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        args = json.load(fh)
    apply = bool(args.get("apply", True))
    lists: dict[str, list[str]] = {"world_writable": [], "world_writable_fixed": [],
                                   "suid_removed": [], "suid_allowed": [], "suid_unlisted": [], "root_only": []}
    changed = False
    for path in world_writable(args.get("system_paths", [])):
        lists["world_writable"].append(path)
        if apply:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            os.chmod(path, mode & ~0o002)
            lists["world_writable_fixed"].append(path)
            changed = True
    allow = set(args.get("allow", []))
    remove = set(args.get("remove", []))
    for path in setid_files(args.get("root", "/"), args.get("prune", [])):
        real = os.path.realpath(path)
        if path in remove or real in remove:
            if apply and strip_setid(path):
                changed = True
            lists["suid_removed"].append(path)
        elif path in allow or real in allow:
            lists["suid_allowed"].append(path)
        else:
            lists["suid_unlisted"].append(path)
    # Bits already removed on an earlier run: still reported as removed (the state stays the same).
    for path in sorted(remove):
        if path not in lists["suid_removed"] and os.path.exists(path) and has_override(path):
            lists["suid_removed"].append(path)
    lists["suid_removed"].sort()
    for path in compilers(args.get("root_only", []), args.get("path")):
        if apply and restrict_to_root(path):
            changed = True
        lists["root_only"].append(path)
    print(json.dumps({"changed": changed, **lists}, sort_keys=True))


if __name__ == "__main__":
    main()
