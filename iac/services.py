"""`Service`: one ComponentResource per lab service (type `seclab:service:<Kind>`).

A service is its container (built by `hardening.container_args`), the named volumes it may write,
and the host files it reads (rendered configs, secret files, TLS material), each written with the
owner the container's non-root uid needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from .config import Settings
from .hardening import Hardened, bind, hardened_container, volume
from .hostfile import HostFile


@dataclass(frozen=True)
class File:
    """A file mounted read-only into the container at `target`."""

    name: str
    target: str
    content: pulumi.Input[str] | None = None
    source: str | None = None
    secret: bool = False
    """Written under the secrets dir, 0400; `content` must then be a secret Output."""
    public: bool = False
    """Certificates and CA bundles: 0444 is fine, they are public by nature."""
    mode: str | None = None
    """Explicit mode (e.g. 0600 for the realm export, as the native engine writes it)."""
    convert: str | None = None
    """Conversion of a `source` at write time (see hostfile.CONVERSIONS)."""


@dataclass
class Spec:
    kind: str
    hardened: Hardened
    uid: int
    gid: int
    files: Sequence[File] = ()
    volumes: dict[str, str] = field(default_factory=dict)
    """Named volume suffix -> mount target: the only persistent writable paths."""
    repo_binds: Sequence[tuple[str, str]] = ()
    """(host path in the repository, target): static files, read-only."""


def tls_files(settings: Settings, leaf: str, as_name: str, ca: bool = True, crl: bool = False) -> list[File]:
    """A PKI leaf (chain + key), the CA bundle and optionally the CRLs, copied with the container uid as owner."""
    t = settings.tls(leaf)
    files = [
        File(f"{as_name}.crt", f"/run/tls/{as_name}.crt", source=t.cert, public=True),
        File(f"{as_name}.key", f"/run/tls/{as_name}.key", source=t.key, secret=True),
    ]
    if ca:
        files.append(File("ca.crt", "/run/tls/ca.crt", source=t.ca, public=True))
    if crl:
        files.append(File("crl.pem", "/run/tls/crl.pem", source=settings.crl(), public=True))
    return files


class Service(pulumi.ComponentResource):
    container: docker.Container

    def __init__(
        self,
        spec: Spec,
        settings: Settings,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        name = spec.hardened.service
        super().__init__(f"seclab:service:{spec.kind}", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        mounts = list(spec.hardened.mounts)
        written: list[pulumi.Resource] = []
        for vol_name, target in spec.volumes.items():
            vol = docker.Volume(f"{name}-{vol_name}", name=f"{settings.prefix}-{name}-{vol_name}", opts=child)
            mounts.append(volume(vol.name, target))
        for f in spec.files:
            base = settings.secrets_dir if f.secret else settings.host_dir
            path = str(base / name / f.name)
            mode = f.mode or ("0400" if f.secret else ("0444" if f.public else "0440"))
            hf = HostFile(
                f"{name}-{f.name}",
                path=path,
                uid=spec.uid,
                gid=spec.gid,
                mode=mode,
                content=f.content,
                source=f.source,
                convert=f.convert,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["content"]),
            )
            written.append(hf)
            mounts.append(bind(path, f.target))
        for src, target in spec.repo_binds:
            mounts.append(bind(src, target))
        spec.hardened.mounts = mounts
        self.container = hardened_container(spec.hardened, settings.prefix, self, [*written, *depends_on])
        self.register_outputs({"container": self.container.name})
