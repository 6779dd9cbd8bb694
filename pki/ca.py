"""ensure / rotate / revoke / status: the lab PKI's state on disk, converged idempotently.

Why idempotent with a change report: the Ansible role calls `python -m pki ensure` on every run
and must report `changed=0` the second time; a re-issue happens only when something is missing,
wrong, revoked, or due (less than `renew_fraction` of the lifetime left).
"""

from __future__ import annotations

import fcntl
import pwd
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, Field

from . import issue
from .layout import (
    DEFAULT_PRIVATE_GROUP,
    KEY_MODE,
    PUBLIC_MODE,
    Layout,
    ensure_dirs,
    fix_file,
    lookup_user,
    write_atomic,
)
from .model import CertSpec, KeyAlgorithm, PkiPlan


class EnsureResult(BaseModel):
    """What one run changed; `changed` is what Ansible reports."""

    changed: bool = False
    issued: list[str] = Field(default_factory=list, description="root, intermediate and leaf names")
    reasons: dict[str, str] = Field(default_factory=dict, description="why each one was issued")
    fixed: list[str] = Field(default_factory=list, description="files rewritten or re-permissioned")
    revoked: list[str] = Field(default_factory=list, description="serials (hex) added to the CRL")
    crl_updated: bool = False
    owners_skipped: list[str] = Field(default_factory=list, description="owners absent on this host")


class CertStatus(BaseModel):
    name: str
    kind: str
    subject: str
    issuer: str
    sans: list[str]
    serial: str
    not_before: datetime
    not_after: datetime
    days_left: float
    verifies: bool
    error: str | None = None
    revoked: bool = False
    key_mode: str | None = None
    key_owner: str | None = None


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


@contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One writer at a time: Ansible and an operator's `lab pki rotate` must not interleave."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _read_key(path: Path) -> issue.PrivateKey | None:
    try:
        return issue.load_key(path.read_bytes())
    except (OSError, ValueError, TypeError):
        return None


def _read_crl(path: Path) -> x509.CertificateRevocationList | None:
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        return None


def _key_algorithm(key: issue.PrivateKey) -> KeyAlgorithm | None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ecdsa-p256", 384: "ecdsa-p384"}.get(key.curve.key_size)  # type: ignore[return-value]
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072:
        return "rsa-3072"
    return None


def _same_key(cert: x509.Certificate, key: issue.PrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def _due(cert: x509.Certificate, now: datetime, fraction: float) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < lifetime * fraction


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _matches_spec(cert: x509.Certificate, spec: CertSpec) -> bool:
    """Names and purpose as planned? A changed `edge.host_names` must re-issue the edge cert."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != spec.common_name:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    want_eku = ExtendedKeyUsageOID.SERVER_AUTH if spec.kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    if list(eku) != [want_eku]:
        return False
    return (
        set(san.get_values_for_type(x509.DNSName)) == set(spec.dns_names)
        and set(san.get_values_for_type(x509.IPAddress)) == set(spec.ip_addresses)
        and set(san.get_values_for_type(x509.UniformResourceIdentifier)) == set(spec.uris)
    )


def _revoked_serials(crl: x509.CertificateRevocationList | None) -> set[int]:
    return {r.serial_number for r in crl} if crl is not None else set()


class _Run:
    """One ensure pass: holds the loaded CA material and accumulates the result."""

    def __init__(self, plan: PkiPlan, layout: Layout, now: datetime) -> None:
        self.plan, self.ca, self.layout, self.now = plan, plan.ca, layout, now
        self.result = EnsureResult()

    def _sync_public(self, path: Path, data: bytes) -> None:
        """Write a public file only when its bytes differ, otherwise just check its mode."""
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            write_atomic(path, data, PUBLIC_MODE)
            self.result.fixed.append(str(path))
        elif fix_file(path, PUBLIC_MODE, None):
            self.result.fixed.append(str(path))

    def _issued(self, name: str, reason: str) -> None:
        self.result.issued.append(name)
        self.result.reasons[name] = reason

    # --- CA levels -------------------------------------------------------------------------------
    def root(self) -> tuple[x509.Certificate, issue.PrivateKey]:
        L, ca = self.layout, self.ca
        cert, key = _read_cert(L.root_cert), _read_key(L.root_key)
        reason = None
        if cert is None or key is None:
            reason = "missing"
        elif not _same_key(cert, key):
            reason = "key does not match certificate"
        elif _key_algorithm(key) != ca.key_algorithm:
            reason = f"key algorithm is not {ca.key_algorithm}"
        elif _due(cert, self.now, ca.renew_fraction):
            reason = "due for renewal"
        if reason is not None:
            key = issue.generate_key(ca.key_algorithm)
            cert = issue.issue_root(
                key, ca.root_common_name, ca.organization, self.now, ca.root_lifetime_days
            )
            write_atomic(L.root_key, issue.key_pem(key), KEY_MODE)
            write_atomic(L.root_cert, issue.cert_pem(cert), PUBLIC_MODE)
            self._issued("root", reason)
        else:
            self._fix_mode(L.root_key, KEY_MODE, None)
        assert cert is not None and key is not None
        return cert, key

    def intermediate(
        self, root: x509.Certificate, root_key: issue.PrivateKey
    ) -> tuple[x509.Certificate, issue.PrivateKey]:
        L, ca = self.layout, self.ca
        cert, key = _read_cert(L.intermediate_cert), _read_key(L.intermediate_key)
        reason = None
        if cert is None or key is None:
            reason = "missing"
        elif not _same_key(cert, key):
            reason = "key does not match certificate"
        elif not _issued_by(cert, root):
            reason = "not issued by the current root"
        elif _key_algorithm(key) != ca.key_algorithm:
            reason = f"key algorithm is not {ca.key_algorithm}"
        elif _due(cert, self.now, ca.renew_fraction):
            reason = "due for renewal"
        if reason is not None:
            key = issue.generate_key(ca.key_algorithm)
            cert = issue.issue_intermediate(
                key,
                ca.intermediate_common_name,
                ca.organization,
                root,
                root_key,
                self.now,
                ca.intermediate_lifetime_days,
            )
            write_atomic(L.intermediate_key, issue.key_pem(key), KEY_MODE)
            write_atomic(L.intermediate_cert, issue.cert_pem(cert), PUBLIC_MODE)
            self._issued("intermediate", reason)
        else:
            self._fix_mode(L.intermediate_key, KEY_MODE, None)
        assert cert is not None and key is not None
        return cert, key

    def _fix_mode(self, path: Path, mode: int, owner: tuple[int, int] | None) -> None:
        if fix_file(path, mode, owner):
            self.result.fixed.append(str(path))

    # --- leaves ----------------------------------------------------------------------------------
    def leaf(
        self,
        spec: CertSpec,
        inter: x509.Certificate,
        inter_key: issue.PrivateKey,
        revoked: set[int],
        force: bool,
    ) -> x509.Certificate:
        L, ca = self.layout, self.ca
        owner = lookup_user(spec.owner)
        if spec.owner is not None and owner is None:
            self.result.owners_skipped.append(f"{spec.name}:{spec.owner}")
        cert, key = _read_cert(L.cert(spec.name)), _read_key(L.key(spec.name))
        reason = None
        if force:
            reason = "rotation requested"
        elif cert is None or key is None:
            reason = "missing"
        elif not _same_key(cert, key):
            reason = "key does not match certificate"
        elif not _issued_by(cert, inter):
            reason = "not issued by the current intermediate"
        elif cert.serial_number in revoked:
            reason = "revoked"
        elif _key_algorithm(key) != ca.key_algorithm:
            reason = f"key algorithm is not {ca.key_algorithm}"
        elif not _matches_spec(cert, spec):
            reason = "names or purpose changed"
        elif _due(cert, self.now, ca.renew_fraction):
            reason = "due for renewal"
        if reason is not None:
            key = issue.generate_key(ca.key_algorithm)
            cert = issue.issue_leaf(spec, key, inter, inter_key, ca.organization, self.now)
            # Key first: the new cert must never be on disk without its key (a reload would fail).
            write_atomic(L.key(spec.name), issue.key_pem(key), KEY_MODE, owner)
            write_atomic(L.cert(spec.name), issue.cert_pem(cert), PUBLIC_MODE)
            self._issued(spec.name, reason)
        else:
            self._fix_mode(L.key(spec.name), KEY_MODE, owner)
            self._fix_mode(L.cert(spec.name), PUBLIC_MODE, None)
        assert cert is not None
        # Servers and clients both present leaf + intermediate, because the trust bundle is root-only.
        self._sync_public(L.chain(spec.name), issue.cert_pem(cert) + issue.cert_pem(inter))
        return cert

    # --- CRLs ------------------------------------------------------------------------------------
    def crl(
        self,
        ca_cert: x509.Certificate,
        ca_key: issue.PrivateKey,
        path: Path,
        add: Iterable[x509.RevokedCertificate] = (),
    ) -> x509.CertificateRevocationList:
        """Re-sign when new entries arrive, the issuer changed, or nextUpdate is near.

        Why refresh early: nginx and PostgreSQL check CRLs with CRL_CHECK_ALL and refuse every
        handshake once a CRL has expired, so an expired CRL is an outage, not a warning.
        """
        old = _read_crl(path)
        add = list(add)
        fresh = (
            old is not None and old.is_signature_valid(ca_key.public_key()) and old.issuer == ca_cert.subject
        )
        entries: list[x509.RevokedCertificate] = list(old) if (fresh and old is not None) else []
        known = {e.serial_number for e in entries}
        new = [e for e in add if e.serial_number not in known]
        due = True
        if fresh and old is not None and old.next_update_utc is not None:
            window = (old.next_update_utc - old.last_update_utc) * self.ca.renew_fraction
            due = old.next_update_utc - self.now < window
        if not fresh or new or due:
            number = 1
            if fresh and old is not None:
                try:
                    number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
                except x509.ExtensionNotFound:
                    number = 1
            crl = issue.build_crl(ca_cert, ca_key, entries + new, number, self.now, self.ca.crl_lifetime_days)
            write_atomic(path, crl.public_bytes(Encoding.PEM), PUBLIC_MODE)
            self.result.crl_updated = True
            self.result.revoked += [format(e.serial_number, "x") for e in new]
            return crl
        self._fix_mode(path, PUBLIC_MODE, None)
        assert old is not None
        return old


def _converge(
    plan: PkiPlan,
    directory: Path,
    *,
    now: datetime | None,
    force: set[str],
    revoke_add: dict[str, x509.ReasonFlags] | None = None,
    private_group: str | None,
) -> EnsureResult:
    layout = Layout(Path(directory))
    run = _Run(plan, layout, _now(now))
    with _locked(layout):
        if ensure_dirs(layout, private_group):
            run.result.fixed.append(str(layout.root))
        root, root_key = run.root()
        inter, inter_key = run.intermediate(root, root_key)
        run._sync_public(layout.ca_bundle, issue.cert_pem(root))
        run._sync_public(layout.ca_chain, issue.cert_pem(inter) + issue.cert_pem(root))
        run.crl(root, root_key, layout.root_crl)

        # Explicit revocations (revoke NAME, rotate --revoke-old) go into the CRL *before* leaves
        # are checked, so a revoked leaf is re-issued in the same run only when asked to.
        additions: list[x509.RevokedCertificate] = []
        for name, reason in (revoke_add or {}).items():
            current = _read_cert(layout.cert(name))
            if current is not None and _issued_by(current, inter):
                additions.append(issue.revoked_entry(current.serial_number, run.now, reason))
        crl = run.crl(inter, inter_key, layout.intermediate_crl, additions)
        revoked = _revoked_serials(crl)
        for spec in plan.certs:
            run.leaf(spec, inter, inter_key, revoked, spec.name in force)
        run._sync_public(
            layout.crl_bundle, layout.intermediate_crl.read_bytes() + layout.root_crl.read_bytes()
        )
    r = run.result
    r.changed = bool(r.issued or r.fixed or r.crl_updated)
    return r


def ensure(
    plan: PkiPlan,
    directory: Path | str,
    *,
    now: datetime | None = None,
    private_group: str | None = DEFAULT_PRIVATE_GROUP,
) -> EnsureResult:
    """Issue only what is missing, wrong, revoked or due; fix modes and owners. Idempotent."""
    return _converge(plan, Path(directory), now=now, force=set(), private_group=private_group)


def rotate(
    plan: PkiPlan,
    directory: Path | str,
    names: Iterable[str] | None = None,
    *,
    revoke_old: bool = False,
    now: datetime | None = None,
    private_group: str | None = DEFAULT_PRIVATE_GROUP,
) -> EnsureResult:
    """New key and certificate for the named leaves (all when None), right now.

    With `revoke_old`, the replaced certificates are put on the CRL as `superseded` (for a
    suspected key compromise use `revoke` with reason key_compromise instead).
    """
    wanted = set(plan.names() if names is None else names)
    unknown = wanted - set(plan.names())
    if unknown:
        raise KeyError(f"unknown certificate(s): {', '.join(sorted(unknown))}")
    # One run: the old serials go on the CRL first, then the forced leaves are re-issued.
    rev = {n: x509.ReasonFlags.superseded for n in wanted} if revoke_old else None
    return _converge(
        plan, Path(directory), now=now, force=wanted, revoke_add=rev, private_group=private_group
    )


def revoke(
    plan: PkiPlan,
    directory: Path | str,
    name: str,
    *,
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
    reissue: bool = False,
    now: datetime | None = None,
    private_group: str | None = DEFAULT_PRIVATE_GROUP,
) -> EnsureResult:
    """Put the current certificate of `name` on the intermediate's CRL.

    Without `reissue` the revoked leaf stays on disk (the service keeps failing closed at its peers
    until someone looks); the next `ensure` replaces it because a revoked serial is never kept.
    """
    plan.get(name)  # KeyError for unknown names
    layout = Layout(Path(directory))
    if _read_cert(layout.cert(name)) is None:
        raise FileNotFoundError(f"no certificate {name!r} under {directory}; run `lab pki init` first")
    if reissue:
        return _converge(
            plan, layout.root, now=now, force={name}, revoke_add={name: reason}, private_group=private_group
        )
    # Converge everything except the named leaf, which must stay as it is (revoked) for now.
    only_others = PkiPlan(ca=plan.ca, certs=tuple(c for c in plan.certs if c.name != name))
    return _converge(
        only_others, layout.root, now=now, force=set(), revoke_add={name: reason}, private_group=private_group
    )


def _verify(
    spec_kind: str, cert: x509.Certificate, inter: x509.Certificate, root: x509.Certificate, now: datetime
) -> str | None:
    """Path validation with cryptography's RFC 5280 / CA/B-style verifier; None when it verifies."""
    builder = v.PolicyBuilder().store(v.Store([root])).time(now)
    try:
        if spec_kind == "server":
            dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = dns.get_values_for_type(x509.DNSName)
            subject: v.DNSName | v.IPAddress = (
                v.DNSName(names[0]) if names else v.IPAddress(dns.get_values_for_type(x509.IPAddress)[0])
            )
            builder.build_server_verifier(subject).verify(cert, [inter])
        else:
            builder.build_client_verifier().verify(cert, [inter])
    except (v.VerificationError, x509.ExtensionNotFound, IndexError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def status(plan: PkiPlan, directory: Path | str, *, now: datetime | None = None) -> list[CertStatus]:
    """Every certificate (root, intermediate, leaves) as it is on disk; missing ones are skipped."""
    layout = Layout(Path(directory))
    t = _now(now)
    root, inter = _read_cert(layout.root_cert), _read_cert(layout.intermediate_cert)
    revoked = _revoked_serials(_read_crl(layout.intermediate_crl))
    out: list[CertStatus] = []

    def _row(name: str, kind: str, cert: x509.Certificate, err: str | None, key_path: Path | None) -> None:
        key_mode = key_owner = None
        if key_path is not None and key_path.exists():
            st = key_path.stat()
            key_mode = oct(st.st_mode & 0o7777)
            try:
                key_owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                key_owner = str(st.st_uid)
        out.append(
            CertStatus(
                name=name,
                kind=kind,
                subject=cert.subject.rfc4514_string(),
                issuer=cert.issuer.rfc4514_string(),
                sans=issue.sans_of(cert),
                serial=format(cert.serial_number, "x"),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                days_left=round((cert.not_valid_after_utc - t).total_seconds() / 86400, 1),
                verifies=err is None,
                error=err,
                revoked=cert.serial_number in revoked and kind != "root",
                key_mode=key_mode,
                key_owner=key_owner,
            )
        )

    if root is not None:
        self_ok = _issued_by(root, root) and root.not_valid_before_utc <= t <= root.not_valid_after_utc
        _row("root", "ca", root, None if self_ok else "not self-signed or expired", layout.root_key)
    if inter is not None:
        ok = root is not None and _issued_by(inter, root) and inter.not_valid_after_utc >= t
        _row(
            "intermediate",
            "ca",
            inter,
            None if ok else "not issued by the root or expired",
            layout.intermediate_key,
        )
    for spec in plan.certs:
        cert = _read_cert(layout.cert(spec.name))
        if cert is None:
            continue
        if root is None or inter is None:
            err: str | None = "CA missing"
        else:
            err = _verify(spec.kind, cert, inter, root, t)
        if err is None and cert.serial_number in revoked:
            err = "revoked"
        _row(spec.name, spec.kind, cert, err, layout.key(spec.name))
    return out


def ca_bundle_path(directory: Path | str) -> Path:
    """The trust anchor file that `lab status --json` shows as `edge.ca_cert`."""
    return Layout(Path(directory)).ca_bundle


__all__ = ["CertStatus", "EnsureResult", "ca_bundle_path", "ensure", "revoke", "rotate", "status"]
