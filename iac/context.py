"""What every service component shares: settings, networks, generated secrets, images, log volumes.

Built once by `program.build` and handed to each component (iac/components.py), so a component only
declares its own containers. Resource names are the ones the program always used: an existing stack
sees the same resources (components re-parent them with an alias, see `Context.add`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from labdef import LabDefinition

from . import render
from .config import IAC_DIR, REPO_ROOT, Settings
from .services import File, Service, Spec

NETWORKS = ("edge", "app", "data")

PASSWORDS = ("postgres", "db-owner", "db-app", "db-tenant-key", "db-monitor", "keycloak-db", "keycloak-admin", "grafana-admin",
             "llama-api-key", "llm-canary")
"""Generated service passwords (a Pulumi secret each), plus one per Redis ACL user."""

IMAGES: dict[str, str] = {"app": "app.Dockerfile", "edge": "edge.Dockerfile", "llama": "llama.Dockerfile",
                          "keycloak": "keycloak.Dockerfile", "nginx-exporter": "nginx-exporter.Dockerfile"}
"""Images built from the repository (exact base tags inside the Dockerfiles)."""

MOVED = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
"""Resources that moved under a component: the alias names their former place (at the stack's root),
so an existing stack adopts them instead of replacing them."""


def networks(settings: Settings) -> dict[str, docker.Network]:
    # data is internal: the data tier has no route out and none in except from app-tier peers
    # (CIS 5.29 spirit, ASVS 1.4.x segmentation). app keeps egress for the external AI provider.
    # app has a fixed subnet: the edge's address on it is the one proxy the app trusts.
    return {
        n: docker.Network(
            n,
            name=f"{settings.prefix}-{n}",
            internal=(n == "data"),
            driver="bridge",
            ipam_configs=[docker.NetworkIpamConfigArgs(subnet=settings.app_subnet)] if n == "app" else None,
            labels=[docker.NetworkLabelArgs(label="seclab.tier", value=n)],
        )
        for n in NETWORKS
    }


def password(name: str) -> random.RandomPassword:
    """32 characters, alphanumeric so no shell or URL quoting issue; a Pulumi secret in state."""
    return random.RandomPassword(name, length=32, special=False)


def sha256(p: random.RandomPassword) -> pulumi.Output[str]:
    return pulumi.Output.secret(p.result.apply(lambda v: hashlib.sha256(v.encode()).hexdigest()))


def wrapper(exports: dict[str, str], exec_cmd: str) -> list[str]:
    """Export secrets from files into the *process* env only (not `docker inspect`), then exec.
    Returned without the leading /bin/bash: the containers use it as their entrypoint."""
    lines = "; ".join(f'export {var}="$(cat {path})"' for var, path in exports.items())
    return ["-c", f"set -e; {lines}; exec {exec_cmd}"]


def tree_files(tree: dict[str, str], prefix: str, target_dir: str) -> list[File]:
    """Rendered files (relative path -> text) mounted one by one under `target_dir`."""
    return [File(f"{prefix}/{rel}", f"{target_dir}/{rel}", content=text) for rel, text in sorted(tree.items())]


def _image(s: Settings, key: str, dockerfile: str, args: dict[str, str] | None = None) -> docker.Image:
    return docker.Image(
        f"{key}-image",
        image_name=f"{s.prefix}/{key}:{s.lab.name}-0.1.0",
        build=docker.DockerBuildArgs(context=str(REPO_ROOT), dockerfile=str(IAC_DIR / "images" / dockerfile),
                                     platform="linux/amd64", args=args),
        skip_push=True,
    )


@dataclass
class Context:
    s: Settings
    nets: dict[str, docker.Network]
    pw: dict[str, random.RandomPassword]
    images: dict[str, docker.Image]
    logs_app: docker.Volume
    logs_edge: docker.Volume
    redis_users: list[str]
    app_d: dict[str, Any]
    worker_d: dict[str, Any]
    pg_roles: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def lab(self) -> LabDefinition:
        return self.s.lab

    @classmethod
    def create(cls, s: Settings) -> Context:
        lab = s.lab
        redis_users = render.redis_acl_users(lab)
        images = {key: _image(s, key, dockerfile, {"KEYCLOAK_IMAGE": s.image("keycloak")}
                              if key == "keycloak" else None) for key, dockerfile in IMAGES.items()}
        return cls(
            s=s, nets=networks(s),
            pw={n: password(f"{n}-password") for n in (*PASSWORDS, *(f"redis-{u}" for u in redis_users))},
            images=images,
            logs_app=docker.Volume("logs-app", name=f"{s.prefix}-logs-app"),
            logs_edge=docker.Volume("logs-edge", name=f"{s.prefix}-logs-edge"),
            redis_users=redis_users, app_d=render.role_defaults("app", lab),
            worker_d=render.role_defaults("worker", lab), pg_roles=render.postgres_roles(lab),
        )

    def secret(self, key: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.pw[key].result)

    def secret_file(self, name: str, key: str, target_dir: str = "/run/secrets") -> File:
        return File(name, f"{target_dir}/{name}", content=self.secret(key), secret=True)

    def image_name(self, key: str) -> pulumi.Output[str]:
        return self.images[key].image_name

    def add(self, spec: Spec, parent: pulumi.Resource, depends: Sequence[str] = ()) -> Service:
        """One service (its container hardened by iac/hardening.py) as a child of its component."""
        svc = Service(spec, self.s, depends_on=[self.services[d].container for d in depends],
                      opts=pulumi.ResourceOptions(parent=parent, aliases=MOVED))
        self.services[spec.hardened.service] = svc
        return svc
