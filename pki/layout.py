"""Where the lab PKI lives on disk, and how files get there safely.

    <dir>/ca/root.crt  root.key (0600)  intermediate.crt  intermediate.key (0600)
    <dir>/ca/ca-bundle.crt          trust anchor for every peer: the ROOT ONLY (see below)
    <dir>/ca/chain.crt              intermediate + root, for tools that want the whole path
    <dir>/crl/intermediate.crl.pem  root.crl.pem  crl.pem (both, for nginx/PostgreSQL CRL_CHECK_ALL)
    <dir>/certs/<name>.crt  <name>.chain.crt (leaf + intermediate)
    <dir>/private/<name>.key (0600, owned by the service user; dir 0710 root:ssl-cert or 0700)

Why the bundle is root-only: a trust store should hold trust anchors, nothing else. Every server
and every client presents `<name>.chain.crt` (leaf + intermediate), so peers can build the path to
the root; an intermediate in the trust store would itself become an anchor for verifiers that
accept partial chains (cryptography's Store, OpenSSL with PARTIAL_CHAIN), which would let a
certificate survive the loss of the root's signature on the intermediate.
"""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path

KEY_MODE = 0o600  # private keys: owner read/write only (DevSec os-hardening, ASVS 6.4.1)
PUBLIC_MODE = 0o644  # certificates and CRLs are public by nature
PRIVATE_DIR_MODE_GROUP = 0o710  # like Debian's /etc/ssl/private: members traverse, nobody lists
PRIVATE_DIR_MODE = 0o700
PUBLIC_DIR_MODE = 0o755
DEFAULT_PRIVATE_GROUP = "ssl-cert"  # Debian's group for key readers; postgresql-common adds postgres


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def crl_dir(self) -> Path:
        return self.root / "crl"

    @property
    def root_cert(self) -> Path:
        return self.ca_dir / "root.crt"

    @property
    def root_key(self) -> Path:
        return self.ca_dir / "root.key"

    @property
    def intermediate_cert(self) -> Path:
        return self.ca_dir / "intermediate.crt"

    @property
    def intermediate_key(self) -> Path:
        return self.ca_dir / "intermediate.key"

    @property
    def ca_bundle(self) -> Path:
        """What `lab status --json` shows as `edge.ca_cert`."""
        return self.ca_dir / "ca-bundle.crt"

    @property
    def ca_chain(self) -> Path:
        return self.ca_dir / "chain.crt"

    @property
    def intermediate_crl(self) -> Path:
        return self.crl_dir / "intermediate.crl.pem"

    @property
    def root_crl(self) -> Path:
        return self.crl_dir / "root.crl.pem"

    @property
    def crl_bundle(self) -> Path:
        return self.crl_dir / "crl.pem"

    def cert(self, name: str) -> Path:
        return self.certs_dir / f"{name}.crt"

    def chain(self, name: str) -> Path:
        return self.certs_dir / f"{name}.chain.crt"

    def key(self, name: str) -> Path:
        return self.private_dir / f"{name}.key"


def lookup_user(name: str | None) -> tuple[int, int] | None:
    """(uid, gid) of an OS user, or None when it does not exist here (CI, a container, a laptop)."""
    if name is None:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def lookup_group(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def write_atomic(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write via a temp file in the same directory, fsync, then rename.

    Why: a service reloading mid-write (nginx -s reload, PostgreSQL SIGHUP) must see either the old
    or the new file, never half of one; and the mode/owner are set on the temp file *before* the
    content lands, so a key is never world-readable even for an instant (ASVS 6.4.1).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, owner[0], owner[1])
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def fix_file(path: Path, mode: int, owner: tuple[int, int] | None) -> bool:
    """Bring an existing file to mode/owner; True when something had to change."""
    st = path.stat()
    changed = False
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if owner is not None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != owner:
        os.chown(path, owner[0], owner[1])
        changed = True
    return changed


def ensure_dirs(layout: Layout, private_group: str | None = DEFAULT_PRIVATE_GROUP) -> bool:
    """Create the directory tree with its modes; True when something changed."""
    changed = False
    gid = lookup_group(private_group)
    wanted: list[tuple[Path, int, tuple[int, int] | None]] = [
        (layout.root, PUBLIC_DIR_MODE, None),
        (layout.ca_dir, PUBLIC_DIR_MODE, None),
        (layout.certs_dir, PUBLIC_DIR_MODE, None),
        (layout.crl_dir, PUBLIC_DIR_MODE, None),
        (
            layout.private_dir,
            PRIVATE_DIR_MODE_GROUP if gid is not None else PRIVATE_DIR_MODE,
            (os.geteuid(), gid) if gid is not None else None,
        ),
    ]
    for path, mode, owner in wanted:
        if not path.exists():
            path.mkdir(parents=True, mode=mode)
            changed = True
        changed = fix_file(path, mode, owner) or changed
    return changed
