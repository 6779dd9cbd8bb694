"""The pristine root: Debian 12 as this machine kind's image has it before a session.

Built once with debootstrap into HOME/base-<key>, where <key> hashes the package list and this
recipe, so a changed list builds a new base and an unchanged one is reused across runs and by CI on
the same machine. What the image has that Debian cannot give (pyenv's Pythons, NodeSource's Node 20,
the Temurin JDK, Go, Rust, the docker and terraform clients) is not copied but mounted from the host
at the same paths (`HOST_TOOLCHAINS`): the host IS such an image. Directories are copy-on-write
overlays (writable inside, e.g. `pyenv rehash` or `npm -g`, the host's copy never changes), files
read-only binds.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from .common import HERE, HOME, RehearsalError, locked, run, say

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES_FILE = HERE / "image-packages.txt"
# Bump when the build steps below change what a base contains.
RECIPE = "4"

# (host path, path inside): the image's non-Debian toolchains (directories copy-on-write, files read-only).
HOST_TOOLCHAINS: list[tuple[str, str]] = [
    ("/root/.pyenv", "/root/.pyenv"),  # Python 3.12 (the lab's), 3.11 (python3 on PATH), others
    ("/usr/bin/node", "/usr/bin/node"),  # NodeSource Node 20 (Debian has 18)
    ("/usr/lib/node_modules", "/usr/lib/node_modules"),  # npm, corepack
    ("/usr/include/node", "/usr/include/node"),  # node-gyp headers
    ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/temurin-25-jdk-amd64"),
    ("/usr/local/go", "/usr/local/go"),
    ("/root/.cargo", "/root/.cargo"),
    ("/root/.rustup", "/root/.rustup"),
    ("/usr/local/bin/docker", "/usr/local/bin/docker"),  # the client only, as on the image
    ("/usr/local/bin/terraform", "/usr/local/bin/terraform"),
]

# Symlinks the image has outside any Debian package: npm's launchers, PostgreSQL's server binaries on PATH.
IMAGE_SYMLINKS: dict[str, str] = {
    "/usr/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
    "/usr/bin/npx": "../lib/node_modules/npm/bin/npx-cli.js",
    "/usr/bin/corepack": "../lib/node_modules/corepack/dist/corepack.js",
    "/usr/local/bin/initdb": "/usr/lib/postgresql/15/bin/initdb",
    "/usr/local/bin/pg_ctl": "/usr/lib/postgresql/15/bin/pg_ctl",
    "/usr/local/bin/postgres": "/usr/lib/postgresql/15/bin/postgres",
}

# The image's apt settings (a Docker-style Debian: no service starts at install, no .deb kept).
POLICY_RC_D = "#!/bin/sh\n# As on the image: packages never start services at install.\nexit 101\n"
DEBIAN_SOURCES = f"""Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
APT_CONF = {
    "docker-clean": 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
                    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
                    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
# Copied from the host at build time when present (the image's root dotfiles: PATH for pyenv, cargo, go).
HOST_DOTFILES = ["/root/.bashrc", "/root/.profile"]
STAMP = "etc/seclab-rehearsal-base"


def packages() -> list[str]:
    names = []
    for line in PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def base_key(pkgs: list[str] | None = None) -> str:
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{RECIPE}\n".encode())
    h.update("\n".join(sorted(pkgs if pkgs is not None else packages())).encode())
    h.update(repr(sorted(IMAGE_SYMLINKS.items())).encode())
    return h.hexdigest()[:12]


def base_dir() -> Path:
    return HOME / f"base-{base_key()}"


def in_chroot(root: Path, script: str, *, offline: bool = False) -> None:
    """Run a shell script chrooted into root, in a private mount and PID namespace: the /proc, /sys
    and /dev it needs vanish afterwards, and so does any daemon a maintainer script left behind.
    offline: also in an empty network namespace, so maintainer scripts see none of the host's ports
    (pg_createcluster would take 5433 if the host's PostgreSQL holds 5432; the image's cluster is 5432)."""
    setup = (
        "set -e; R=\"$1\"; shift\n"
        "if [ \"$OFFLINE\" = 1 ]; then ip link set lo up; fi\n"
        "mount -t proc proc \"$R/proc\"; mount -t sysfs -o ro sysfs \"$R/sys\"\n"
        "mount --rbind /dev \"$R/dev\"\n"
        "mount --bind \"$ARCHIVES\" \"$R/var/cache/apt/archives\"\n"
        "exec chroot \"$R\" /bin/bash -euo pipefail -c \"$1\"\n"
    )
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root", "ARCHIVES": str(HOME / "apt-archives"),
           "OFFLINE": "1" if offline else "0"}
    (HOME / "apt-archives" / "partial").mkdir(parents=True, exist_ok=True)
    run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", *(["--net"] if offline else []),
         "bash", "-c", setup, "in_chroot", str(root), script], env=env)


def build(dest: Path) -> None:
    """debootstrap + the image's packages + its non-package files, into dest (atomically)."""
    if shutil.which("debootstrap") is None:
        say("installing debootstrap (apt)")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"])
    tmp = dest.with_name(dest.name + ".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    pkgs = packages()
    debs = HOME / "debootstrap-debs"
    debs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say(f"debootstrap {SUITE} (minbase) into {tmp}")
    run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}", SUITE, str(tmp), MIRROR], quiet=True)
    say(f"debootstrap done in {time.monotonic() - t0:.0f}s; configuring apt as on the image")
    (tmp / "etc/apt/sources.list").unlink(missing_ok=True)
    (tmp / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    (tmp / "usr/sbin/policy-rc.d").write_text(POLICY_RC_D)
    (tmp / "usr/sbin/policy-rc.d").chmod(0o755)
    shutil.copy2("/etc/resolv.conf", tmp / "etc/resolv.conf")  # the build resolves like the host
    # The egress proxy's CA first, so ca-certificates' postinst trusts it from the start (Java too).
    cas = Path("/usr/local/share/ca-certificates")
    if cas.is_dir():
        shutil.copytree(cas, tmp / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    say(f"installing the image's {len(pkgs)} Debian packages (apt; several minutes)")
    t1 = time.monotonic()
    install = "apt-get install -y -q --no-install-recommends " + " ".join(pkgs)
    in_chroot(tmp, f"apt-get update -q\n{install} --download-only >/tmp/apt.log 2>&1"
                   " || { tail -n 30 /tmp/apt.log; exit 1; }\n")
    in_chroot(tmp, f"{install} >/tmp/apt.log 2>&1 || {{ tail -n 30 /tmp/apt.log; exit 1; }}\n"
                   "rm -f /tmp/apt.log\n"
                   "update-ca-certificates >/dev/null\n"
                   # The image's PostgreSQL: cluster 15/main created by postinst, on 5432, not running.
                   "grep -Eq '^port = 5432\\b' /etc/postgresql/15/main/postgresql.conf\n", offline=True)
    say(f"packages installed in {time.monotonic() - t1:.0f}s")
    for name, text in APT_CONF.items():
        (tmp / "etc/apt/apt.conf.d" / name).write_text(text)
    for link, target in IMAGE_SYMLINKS.items():
        p = tmp / link.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists():
            p.unlink()
        p.symlink_to(target)
    (tmp / "opt/wheels").mkdir(parents=True, exist_ok=True)  # PIP_FIND_LINKS of the image
    for f in HOST_DOTFILES:
        if Path(f).is_file():
            shutil.copy2(f, tmp / f.lstrip("/"))
    (tmp / STAMP).write_text(f"key={dest.name} built={time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    tmp.rename(dest)


def ensure_base(rebuild: bool = False) -> tuple[Path, bool]:
    """The cached base for the current package list: (path, True if it was built now)."""
    dest = base_dir()
    with locked("base"):
        if rebuild and dest.exists():
            say(f"--rebuild-base: removing {dest}")
            shutil.rmtree(dest)
        if (dest / STAMP).is_file():
            return dest, False
        try:
            build(dest)
        except BaseException:
            shutil.rmtree(dest.with_name(dest.name + ".building"), ignore_errors=True)
            raise
        if not (dest / STAMP).is_file():
            raise RehearsalError(f"base build left no {STAMP} in {dest}")
        return dest, True
