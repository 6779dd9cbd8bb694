"""`HostFile`: a file on the Docker host, written at deploy time, owned by a container's uid.

Why a dynamic provider: a container that runs as a non-root uid can only read a bind-mounted key or
password file if that uid owns it (mode 0400, ASVS 6.4.1 / 2.10.4). Docker cannot chown on mount and
`docker cp` is refused on a read-only root filesystem, so the file is prepared on the host: either
copied from a PKI file (`source`, the key never enters Pulumi state) or written from `content`
(a Pulumi secret for generated passwords: encrypted in state, never in a container's env).
The engine runs Pulumi on the Docker host itself, so host paths are the daemon's paths.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


def write_host_file(path: str, data: bytes, uid: int, gid: int, mode: int) -> str:
    """Atomically write `data` to `path` with owner and mode set before the rename; returns its sha256."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".hostfile-")
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def _pkcs8_der(pem: bytes) -> bytes:
    """A PEM private key as unencrypted PKCS#8 DER: what pgjdbc's default key manager reads (Keycloak)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


CONVERSIONS = {"pkcs8-der": _pkcs8_der}


def _data(props: dict[str, Any]) -> bytes:
    if props.get("source"):
        data = Path(props["source"]).read_bytes()
        if props.get("convert"):
            data = CONVERSIONS[props["convert"]](data)
        return data
    return str(props.get("content") or "").encode()


class HostFileProvider(ResourceProvider):
    """Create/update write the file; delete removes it. The file's hash is the only state kept."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        digest = write_host_file(props["path"], _data(props), int(props["uid"]), int(props["gid"]),
                                 int(props["mode"], 8))
        return CreateResult(id_=props["path"], outs={**props, "sha256": digest})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("path", "uid", "gid", "mode", "content", "source", "convert")
        changed = any(olds.get(k) != news.get(k) for k in keys)
        # A source file renewed on disk (a rotated certificate) is a change too.
        if not changed and news.get("source"):
            changed = hashlib.sha256(_data(news)).hexdigest() != olds.get("sha256")
        return DiffResult(changes=changed, replaces=["path"] if olds.get("path") != news.get("path") else [])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        digest = write_host_file(news["path"], _data(news), int(news["uid"]), int(news["gid"]),
                                 int(news["mode"], 8))
        return UpdateResult(outs={**news, "sha256": digest})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class HostFile(Resource):
    """One host file. Give exactly one of `content` (may be a secret Output) or `source` (a path);
    `convert` transforms a source at write time (e.g. `pkcs8-der` for a PEM key)."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        path: str,
        uid: int,
        gid: int,
        mode: str = "0400",
        content: pulumi.Input[str] | None = None,
        source: str | None = None,
        convert: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if (content is None) == (source is None):
            raise ValueError(f"HostFile {name}: give exactly one of content or source")
        if convert is not None and (source is None or convert not in CONVERSIONS):
            raise ValueError(f"HostFile {name}: convert needs a source and one of {sorted(CONVERSIONS)}")
        props = {"path": path, "uid": uid, "gid": gid, "mode": mode, "content": content, "source": source,
                 "convert": convert, "sha256": None}
        super().__init__(HostFileProvider(), name, props, opts)
