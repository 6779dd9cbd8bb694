"""The one place container hardening is decided: every service builds its container through here.

Each default carries its reason (CIS Docker Benchmark v1.6 section numbers, OWASP ASVS 4.0.3).
A service may add a capability back or mount a writable path, but only through named arguments
that the policy pack (iac/policy/rules.py) and the tests can see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_docker as docker

Tier = Literal["edge", "app", "data"]

NO_NEW_PRIVILEGES = "no-new-privileges:true"  # CIS 5.25: setuid binaries cannot raise privileges
RESTART_POLICY = "unless-stopped"  # CIS 5.14: restart on failure, but an operator's stop sticks
JOB_RESTART_POLICY = "on-failure"  # a one-shot task retries on failure, never re-runs after success
JOB_MAX_RETRIES = 10
TMPFS_OPTS = "rw,noexec,nosuid,nodev,size=64m"  # CIS 5.12 companion: scratch space that cannot run code


@dataclass
class Hardened:
    """What a service says about its container; `container_args` turns it into pulumi-docker args."""

    service: str
    tier: Tier
    image: pulumi.Input[str]
    user: str
    memory_bytes: int
    healthcheck: list[str]
    networks: Sequence[tuple[docker.Network, list[str]] | tuple[docker.Network, list[str], str]]
    """(network, aliases) or (network, aliases, fixed IPv4 address)."""
    command: Sequence[pulumi.Input[str]] | None = None
    entrypoints: Sequence[str] | None = None
    envs: Sequence[pulumi.Input[str]] = ()
    tmpfs: Mapping[str, str] = field(default_factory=lambda: {"/tmp": TMPFS_OPTS})
    mounts: Sequence[docker.ContainerMountArgs] = ()
    ports: Sequence[docker.ContainerPortArgs] = ()
    cap_add: Mapping[str, str] = field(default_factory=dict)
    """Capability -> reason. Empty for every service today; the reason is required to add one."""
    hostname: str | None = None
    start_period: str = "30s"
    sysctls: Mapping[str, str] = field(default_factory=dict)
    """Namespaced sysctls only (e.g. unprivileged low ports for the edge instead of a capability)."""
    job: bool = False
    """A one-shot task (exits when done): restart on failure only, and not required to keep running."""
    network_mode: str | None = None
    """`container:<name>`: a sidecar in another service's network namespace (then no networks of its own)."""
    groups: Sequence[str] = ()
    """Extra group ids (read access to another service's files, e.g. the shipper to the edge's logs)."""


def bind(source: str, target: str, read_only: bool = True) -> docker.ContainerMountArgs:
    """A host path mounted read-only unless said otherwise (CIS 5.5: no sensitive host dirs rw)."""
    return docker.ContainerMountArgs(type="bind", source=source, target=target, read_only=read_only)


def volume(name: pulumi.Input[str], target: str) -> docker.ContainerMountArgs:
    """A named volume: the only writable persistent paths a container gets."""
    return docker.ContainerMountArgs(type="volume", source=name, target=target, read_only=False)


def container_args(h: Hardened, prefix: str) -> dict[str, Any]:
    """Keyword arguments for `docker.Container`, with every hardening default applied."""
    if h.ports and h.tier != "edge":
        raise ValueError(f"{h.service}: only the edge tier publishes ports (CIS 5.13)")
    if not h.user or h.user.split(":")[0] in ("", "0", "root"):
        raise ValueError(f"{h.service}: containers run as a non-root user (CIS 4.1)")
    if h.network_mode and (not h.network_mode.startswith("container:") or h.networks):
        raise ValueError(f"{h.service}: only a sidecar (container:<name>, no networks) sets network_mode (CIS 5.9)")
    missing = [cap for cap, why in h.cap_add.items() if not why.strip()]
    if missing:
        raise ValueError(f"{h.service}: capability added without a reason: {missing}")
    return {
        "name": f"{prefix}-{h.service}",
        "image": h.image,
        # A sidecar shares the other container's namespace, hostname included (Docker refuses both).
        "hostname": None if h.network_mode else (h.hostname or h.service),
        "network_mode": h.network_mode,
        "group_adds": list(h.groups) or None,
        "user": h.user,  # CIS 4.1: a non-root user inside the container
        "read_only": True,  # CIS 5.12: read-only root filesystem; writable paths are tmpfs or volumes
        # CIS 5.3: drop every capability, add back only what a service names with a reason.
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=sorted(h.cap_add) or None),
        "security_opts": [NO_NEW_PRIVILEGES],
        "privileged": False,  # CIS 5.4
        "memory": h.memory_bytes,  # CIS 5.10
        "memory_swap": h.memory_bytes,  # no swap beyond the limit: the limit is the real ceiling
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=4096, hard=4096)],  # CIS 5.28 (no pids_limit arg)
        "healthcheck": docker.ContainerHealthcheckArgs(  # CIS 4.6
            tests=list(h.healthcheck), interval="30s", timeout="5s", retries=3, start_period=h.start_period
        ),
        "restart": JOB_RESTART_POLICY if h.job else RESTART_POLICY,
        "max_retry_count": JOB_MAX_RETRIES if h.job else 0,
        "init": True,  # reap zombies; signals reach the service
        "tmpfs": dict(h.tmpfs),
        "mounts": list(h.mounts),
        "networks_advanced": [
            docker.ContainerNetworksAdvancedArgs(name=net[0].name, aliases=net[1],
                                                 ipv4_address=net[2] if len(net) > 2 else None)
            for net in h.networks
        ],
        "sysctls": dict(h.sysctls) or None,
        "ports": list(h.ports),
        "envs": list(h.envs),
        "command": list(h.command) if h.command else None,
        "entrypoints": list(h.entrypoints) if h.entrypoints else None,
        # Bounded local logs (CIS 2.12 spirit): the ELK pipeline reads the JSON files, not docker logs.
        "log_driver": "json-file",
        "log_opts": {"max-size": "10m", "max-file": "3"},
        "labels": [
            docker.ContainerLabelArgs(label="seclab.service", value=h.service),
            docker.ContainerLabelArgs(label="seclab.tier", value=h.tier),
        ],
        "must_run": not h.job,
        "wait": False,
    }


def hardened_container(
    h: Hardened, prefix: str, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()
) -> docker.Container:
    """Create the container as a child of its service component."""
    return docker.Container(
        h.service,
        **container_args(h, prefix),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
