"""Sandboxes: a throw-away copy of the base root in its own namespaces, kept alive by tini.

A sandbox is HOME/sandboxes/<name>/ (state.json, init.log, and the copy: an overlayfs upper layer on
top of the read-only base, or a full `cp -a --reflink=auto` copy where overlayfs cannot be mounted).
Its PID 1 is tini inside new mount, PID, UTS, IPC and network namespaces (ns-init.sh); commands run
in it with nsenter. Killing that PID 1 ends every process of the sandbox and every mount made for it
(they live in its mount namespace only), so `destroy` is a kill, a network teardown and an rm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import image, network
from .common import HERE, HOME, RehearsalError, locked, run, say

STATES = HOME / "sandboxes"
TRASH = HOME / "trash"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Host caches shared read-write with every sandbox: pip's wheels (llama-cpp-python compiles once),
# Maven's and npm's downloads. Same path inside, so tools find them where they always do.
SHARED_CACHES = ["/root/.cache/pip", "/root/.m2", "/root/.npm"]
# (host file, file inside, mode): resolver, hosts' package-client settings (the egress proxy's CA bundle).
COPIED_FILES = [
    ("/etc/resolv.conf", "/etc/resolv.conf", "0644"),
    ("/etc/pip.conf", "/etc/pip.conf", "0644"),
    ("/root/.npmrc", "/root/.npmrc", "0600"),
    ("/usr/local/etc/npmrc", "/usr/local/etc/npmrc", "0644"),
]
HOST_CA_DIR = "/usr/local/share/ca-certificates"
# Host variables that describe the caller's shell, not the machine: never passed in.
ENV_DROP = {"PWD", "OLDPWD", "_", "SHLVL", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "PS1", "PYTHONPATH",
            "PYTHONHOME", "MAIL", "SSH_AUTH_SOCK", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY",
            "XDG_RUNTIME_DIR", "XDG_SESSION_ID", "XDG_STATE_HOME", "DBUS_SESSION_BUS_ADDRESS",
            "TMUX", "TMUX_PANE", "OLDPATH"}
ENV_DROP_PREFIXES = ("SECLAB_",)


@dataclass
class Bind:
    src: str
    dst: str
    ro: bool
    cow: bool = False  # an overlay with the sandbox's own upper layer (writable inside, host untouched)

    @property
    def mode(self) -> str:
        return "cow" if self.cow else "ro" if self.ro else "rw"

    @classmethod
    def parse(cls, spec: str) -> Bind:
        """SRC[:DST][:ro|rw] (DST defaults to SRC, mode to rw)."""
        parts = spec.split(":")
        ro = False
        if parts[-1] in ("ro", "rw"):
            ro = parts.pop() == "ro"
        if not parts or len(parts) > 2 or not parts[0]:
            raise RehearsalError(f"--bind {spec!r}: expected SRC[:DST][:ro]")
        src = str(Path(parts[0]).resolve())
        dst = parts[1] if len(parts) == 2 else src
        if not dst.startswith("/"):
            raise RehearsalError(f"--bind {spec!r}: DST must be absolute")
        if not Path(src).exists():
            raise RehearsalError(f"--bind {spec!r}: {src} does not exist")
        return cls(src, dst, ro)


@dataclass
class Sandbox:
    name: str
    index: int
    mode: str  # "overlay" or "copy"
    base: str
    created: str
    worktree: str | None = None
    binds: list[dict[str, object]] = field(default_factory=list)
    pid: int = 0  # host PID of the sandbox's PID 1 (tini)
    starttime: str = ""  # from /proc/<pid>/stat, so a reused PID is never taken for ours

    @property
    def dir(self) -> Path:
        return STATES / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def hostname(self) -> str:
        return f"sbx-{self.name}"[:63]

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.rename(self.dir / "state.json")

    @classmethod
    def load(cls, name: str) -> Sandbox:
        path = STATES / name / "state.json"
        if not path.is_file():
            raise RehearsalError(f"no sandbox named {name!r} (see: .ci/rehearse sandbox list)")
        return cls(**json.loads(path.read_text()))

    def alive(self) -> bool:
        return self.pid > 0 and _starttime(self.pid) == self.starttime

    def subnet(self) -> str:
        return network.addresses(self.index)[2]

    def path_inside(self, path: str) -> Path:
        """A path of the sandbox as seen from the host (through its PID 1's root)."""
        if not self.alive():
            raise RehearsalError(f"sandbox {self.name} is not running")
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")


def _starttime(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def all_sandboxes() -> list[Sandbox]:
    if not STATES.is_dir():
        return []
    out = []
    for d in sorted(STATES.iterdir()):
        if (d / "state.json").is_file():
            try:
                out.append(Sandbox.load(d.name))
            except (ValueError, TypeError):
                say(f"ignoring unreadable {d / 'state.json'}")
    return out


def sandbox_env(host: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment inside: the machine's (as CI gets it), less the caller's shell and venv."""
    env = {k: v for k, v in host.items() if k not in ENV_DROP and not k.startswith(ENV_DROP_PREFIXES)}
    venv = host.get("VIRTUAL_ENV", "")
    path = [p for p in host.get("PATH", "").split(":")
            if p and "/.venv/" not in p + "/" and not (venv and p.startswith(venv))]
    env["PATH"] = ":".join(path) or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env["HOME"] = "/root"
    env.setdefault("LANG", "C.UTF-8")
    env.setdefault("TERM", "xterm")
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env.update(extra or {})
    return env


def _git_common_dir(worktree: Path) -> Path | None:
    res = subprocess.run(["git", "-C", str(worktree), "rev-parse", "--path-format=absolute",
                          "--git-common-dir"], check=False, text=True, capture_output=True)
    return Path(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip() else None


def _binds(sb: Sandbox) -> list[Bind]:
    binds = [Bind(src, dst, True, cow=Path(src).is_dir()) for src, dst in image.HOST_TOOLCHAINS]
    for cache in SHARED_CACHES:
        Path(cache).mkdir(parents=True, exist_ok=True)
        binds.append(Bind(cache, cache, False))
    if sb.worktree:
        binds.append(Bind(sb.worktree, sb.worktree, False))
        common = _git_common_dir(Path(sb.worktree))
        # A linked worktree's .git is a file naming the main repository's .git: bind that too, so
        # git works inside (same path, read-write: commits made inside land in the same repository).
        if common and not common.is_relative_to(sb.worktree):
            binds.append(Bind(str(common), str(common), False))
    binds += [Bind(str(b["src"]), str(b["dst"]), bool(b["ro"])) for b in sb.binds]
    return binds


def overlay_works() -> bool:
    """Can this kernel mount overlayfs with the upper layer on HOME's filesystem?"""
    if os.environ.get("SECLAB_REHEARSAL_COPY") == "1":
        return False
    probe = HOME / ".overlay-probe"
    shutil.rmtree(probe, ignore_errors=True)
    for d in ("lower", "upper", "work", "merged"):
        (probe / d).mkdir(parents=True)
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "overlay",
                          "overlay", "-o", f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work",
                          str(probe / "merged")], check=False, capture_output=True)
    shutil.rmtree(probe, ignore_errors=True)
    return res.returncode == 0


def create(name: str, base: Path, *, worktree: str | None = None, binds: Sequence[Bind] = ()) -> Sandbox:
    if not NAME_RE.match(name):
        raise RehearsalError(f"sandbox name {name!r}: use 1-40 of a-z, 0-9 and '-'")
    wt = None
    if worktree:
        wt_path = Path(worktree).resolve()
        if not wt_path.is_dir():
            raise RehearsalError(f"--worktree {worktree}: not a directory")
        wt = str(wt_path)
    with locked("sandboxes"):
        if (STATES / name / "state.json").exists():
            raise RehearsalError(f"sandbox {name} exists: `sandbox start {name}` restarts it, "
                                 f"`sandbox destroy {name}` removes it")
        used = {s.index for s in all_sandboxes()} | network.tables_present()
        sb = Sandbox(name=name, index=network.free_index(used),
                     mode="overlay" if overlay_works() else "copy", base=str(base),
                     created=time.strftime("%Y-%m-%dT%H:%M:%S"), worktree=wt,
                     binds=[asdict(b) for b in binds])
        sb.save()
    try:
        start(sb)
    except BaseException:
        destroy(sb.name, quiet=True)
        raise
    return sb


def start(sb: Sandbox) -> None:
    """Bring up the namespaces of sb on its (possibly already used) copy of the base."""
    if sb.alive():
        raise RehearsalError(f"sandbox {sb.name} already runs (PID {sb.pid})")
    if not Path(sb.base, image.STAMP).is_file():
        raise RehearsalError(f"the base {sb.base} of sandbox {sb.name} is gone: destroy and recreate it")
    upper, work = sb.dir / "upper", sb.dir / "work"
    sb.root.mkdir(parents=True, exist_ok=True)
    if sb.mode == "overlay":
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
    elif not (sb.root / image.STAMP).is_file():
        say(f"copying the base into {sb.root} (no overlayfs here)")
        run(["cp", "-a", "--reflink=auto", f"{sb.base}/.", str(sb.root)])
    for b in _binds(sb):
        if not Path(b.src).exists():
            say(f"note: {b.src} is not on this host; the sandbox goes without it")
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SBX_ROOT": str(sb.root), "SBX_MODE": sb.mode, "SBX_LOWER": sb.base,
        "SBX_UPPER": str(upper), "SBX_WORK": str(work), "SBX_HOSTNAME": sb.hostname,
        "SBX_BINDS": "\n".join(f"{b.mode}\t{b.src}\t{b.dst}" for b in _binds(sb)),
        "SBX_COW": str(sb.dir / "cow"),
        "SBX_FILES": "\n".join("\t".join(f) for f in COPIED_FILES),
        "SBX_CA_DIR": HOST_CA_DIR,
    }
    with open(sb.dir / "init.log", "ab") as log:
        # Its own session: the sandbox outlives this command and ignores the caller's Ctrl-C.
        proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--uts", "--ipc", "--net", "--fork", "--propagation", "private",
             "bash", str(HERE / "ns-init.sh")],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pid = _wait_for_init(proc, sb)
    sb.pid, sb.starttime = pid, _starttime(pid)
    sb.save()
    network.up(sb.index, pid)


def _wait_for_init(proc: subprocess.Popen[bytes], sb: Sandbox, timeout: float = 120) -> int:
    """The host PID of the namespace's PID 1 once it has become tini (the root is then complete)."""
    deadline = time.monotonic() + timeout
    child = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (sb.dir / "init.log").read_text(errors="replace").strip().splitlines()[-10:]
            raise RehearsalError(f"sandbox {sb.name} did not start (exit {proc.returncode}):\n"
                                 + "\n".join(tail))
        if not child:
            try:
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                child = int(kids[0]) if kids else 0
            except OSError:
                child = 0
        if child:
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "tini":
                    return child
            except OSError:
                pass
        time.sleep(0.1)
    raise RehearsalError(f"sandbox {sb.name}: no tini after {timeout:.0f}s (see {sb.dir / 'init.log'})")


def nsenter(sb: Sandbox, argv: Sequence[str], cwd: str | None = None) -> list[str]:
    """The host command line that runs argv inside sb (all its namespaces, its root, cwd)."""
    if not sb.alive():
        raise RehearsalError(f"sandbox {sb.name} is not running: `.ci/rehearse sandbox start {sb.name}`")
    where = cwd or sb.worktree or "/root"
    return ["nsenter", "--target", str(sb.pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--",
            "/usr/bin/env", "-C", where, *argv]


def execute(sb: Sandbox, argv: Sequence[str], cwd: str | None = None,
            extra_env: Mapping[str, str] | None = None) -> int:
    """Run argv inside sb with the caller's terminal; its exit code."""
    return subprocess.call(nsenter(sb, argv, cwd), env=sandbox_env(os.environ, extra_env))


def _host_mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p == str(path) or p.startswith(prefix)]


def stop(sb: Sandbox) -> None:
    """Kill the sandbox's PID 1: the kernel ends every process of its PID namespace with it."""
    if sb.alive():
        os.kill(sb.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sb.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    others = any(o.name != sb.name and o.alive() for o in all_sandboxes())
    network.down(sb.index, others_left=others)
    sb.pid, sb.starttime = 0, ""
    if (sb.dir / "state.json").exists():
        sb.save()


def destroy(name: str, *, quiet: bool = False) -> None:
    with locked("sandboxes"):
        try:
            sb = Sandbox.load(name)
        except RehearsalError:
            if quiet:
                return
            raise
        stop(sb)
        # The sandbox's mounts lived in its own namespace; a host mount under its directory would
        # mean rm could reach through a bind into the host (pip cache, a worktree): refuse.
        left = _host_mounts_under(sb.dir)
        if left:
            raise RehearsalError(f"mounts remain under {sb.dir}: {left}; not deleting it")
        # Out of the way at once (the name and subnet are free again); the files, gigabytes once a lab
        # ran inside, are deleted in the background, so nobody waits on the lock meanwhile.
        TRASH.mkdir(parents=True, exist_ok=True)
        gone = TRASH / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        sb.dir.rename(gone)
    purge_trash()
    if not quiet:
        say(f"sandbox {name} destroyed (its files are being deleted in the background)")


def purge_trash() -> None:
    """Delete destroyed sandboxes' files, niced and detached, one `rm` per entry (a flock on it keeps a
    second purge off an entry already being deleted; a leftover of an interrupted delete is retried)."""
    if not TRASH.is_dir():
        return
    locks = HOME / "trash.locks"
    locks.mkdir(exist_ok=True)
    for entry in TRASH.iterdir():
        lock = locks / f"{entry.name}.lock"
        script = 'rm -rf --one-file-system "$1" && rm -f "$2"'
        subprocess.Popen(["flock", "-n", str(lock), "nice", "-n", "19", "ionice", "-c", "3",
                          "sh", "-c", script, "purge", str(entry), str(lock)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
