"""The Pulumi engine: the lab as Docker containers, driven through the Automation API.

Why the Automation API and a local file backend: `./lab up --engine pulumi` must work with no
Pulumi Cloud account; state lives under the lab's data dir, encrypted with a passphrase that is
generated into the lab's secrets dir (0600, never printed; ASVS 6.4.1).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labdef import LabDefinition

REPO_ROOT = Path(__file__).resolve().parents[2]
IAC_DIR = REPO_ROOT / "iac"
STACK = "lab"
DOCKER_SOCKET = "/var/run/docker.sock"


class PreflightError(RuntimeError):
    """What this host lacks for the Pulumi engine, as one line a person can act on."""


def _docker_daemon_reachable() -> bool:
    """The client binary is not enough: ask the daemon (`docker version` talks to it)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host or host.startswith("unix://"):
        path = host.removeprefix("unix://") or DOCKER_SOCKET
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(3)
                sock.connect(path)
        except OSError:
            return False
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def preflight() -> None:
    """Raise PreflightError (one line) unless Docker's daemon and the Pulumi CLI are usable here."""
    missing: list[str] = []
    if shutil.which("docker") is None:
        missing.append("Docker Engine (https://docs.docker.com/engine/install/debian/)")
    elif not _docker_daemon_reachable():
        missing.append("a running Docker daemon (docker client found, but no daemon answers; "
                       "install/start Docker Engine: https://docs.docker.com/engine/install/debian/)")
    if shutil.which("pulumi") is None:
        missing.append("the Pulumi CLI (curl -fsSL https://get.pulumi.com | sh)")
    try:
        import pulumi.automation  # noqa: F401
        import pulumi_docker  # noqa: F401
        import pulumi_random  # noqa: F401
    except ImportError as exc:
        missing.append(f"Python package {exc.name} (pip install pulumi pulumi-docker pulumi-random)")
    if missing:
        raise PreflightError("pulumi engine needs: " + "; ".join(missing))


def _private_file(path: Path, make: Callable[[], str]) -> str:
    """Read or create a 0600 file in a 0700 directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    os.chmod(path, 0o600)
    return path.read_text().strip()


def passphrase(lab: LabDefinition) -> str:
    """The stack's secrets-provider passphrase, generated once (256 bits) into the secrets dir."""
    return _private_file(Path(lab.paths.secrets) / "pulumi-passphrase", lambda: secrets.token_urlsafe(32))


def _stack(lab: LabDefinition, lab_file: Path | None) -> Any:
    from pulumi import automation as auto

    state = Path(lab.paths.data) / "pulumi"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase(lab),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    ws = auto.LocalWorkspaceOptions(work_dir=str(IAC_DIR), env_vars=env, secrets_provider="passphrase")
    stack = auto.create_or_select_stack(stack_name=STACK, work_dir=str(IAC_DIR), opts=ws)
    if lab_file is not None:
        stack.set_config("seclab:labFile", auto.ConfigValue(value=str(lab_file)))
    return stack


def ensure_pki(lab: LabDefinition, directory: Path | None = None) -> dict[str, Any]:
    """Issue what is missing or due under paths.pki: the shared plan plus the Docker-only leaves.

    `iac.pki_plan.docker_plan` = `pki.plan.build_plan(lab)` + server certificates of services only
    this engine runs (none today). Runs on the Docker host before the stack, so
    the program's HostFiles copy current certificates.
    """
    import sys

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from iac.pki_plan import docker_plan
    from pki.ca import ensure

    result = ensure(docker_plan(lab), directory or Path(lab.paths.pki))
    return result.model_dump(mode="json")


def up(lab: LabDefinition, lab_file: Path | None = None, on_output: Callable[[str], None] = print,
       refresh: bool = False) -> dict[str, Any]:
    """Issue the PKI, then create or update the containers; returns the stack outputs (secrets masked)."""
    preflight()
    ensure_pki(lab)
    stack = _stack(lab, lab_file)
    if refresh:
        stack.refresh(on_output=on_output)
    result = stack.up(on_output=on_output)
    return {k: ("[secret]" if v.secret else v.value) for k, v in result.outputs.items()}


def down(lab: LabDefinition, lab_file: Path | None = None, on_output: Callable[[str], None] = print) -> None:
    """Destroy the containers, volumes and networks of the stack (the state file remains)."""
    preflight()
    _stack(lab, lab_file).destroy(on_output=on_output)
