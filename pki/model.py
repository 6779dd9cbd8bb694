"""The PKI plan's data model: what certificates the lab needs, independent of how they are issued.

Why a model: Ansible (through `python -m pki ensure`) and Pulumi build from the same validated plan,
so a service cannot get a certificate on one engine and miss it on the other.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KeyAlgorithm = Literal["ecdsa-p256", "ecdsa-p384", "rsa-3072"]
"""ECDSA P-256 by default: Mozilla TLS 'intermediate' and 'modern' both accept it, and every
service of the lab (nginx, PostgreSQL 15, Redis 7, Python ssl) speaks it. RSA stays available
for peers that cannot (ASVS 4.0.3 6.2.5: only approved algorithms and key sizes)."""

CertKind = Literal["server", "client"]

FILE_NAME_RE = r"^[a-z][a-z0-9_-]{0,62}$"
"""Certificate names become file names and CLI arguments: no dots, no slashes, no surprises."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CertSpec(_Strict):
    """One leaf certificate: a server certificate for a service, or a client certificate for mTLS."""

    name: str = Field(pattern=FILE_NAME_RE, description="file stem under certs/ and private/")
    kind: CertKind
    common_name: str = Field(min_length=1, max_length=64)
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    uris: tuple[str, ...] = Field(default=(), description="URI SANs, used to name clients")
    owner: str | None = Field(default=None, description="OS user that reads the key; skipped if absent")
    lifetime_days: int = Field(default=30, ge=1, le=398)
    purpose: str = Field(default="", description="who uses it, for `lab pki status` and the docs")
    reload_hint: str | None = Field(default=None, description="how the service picks up a new cert")

    @model_validator(mode="after")
    def _has_identity(self) -> CertSpec:
        # RFC 6125 / RFC 9525: peers match names in the SAN, never in the CN, so every leaf needs one.
        if not (self.dns_names or self.ip_addresses or self.uris):
            raise ValueError(f"certificate {self.name!r} needs at least one subject alternative name")
        return self


class CaSettings(_Strict):
    """The two CA levels. Lifetimes follow the brief: root 5 y, intermediate 1 y."""

    organization: str = "seclab"
    root_common_name: str = "seclab Root CA"
    intermediate_common_name: str = "seclab Intermediate CA"
    key_algorithm: KeyAlgorithm = "ecdsa-p256"
    root_lifetime_days: int = Field(default=5 * 365, ge=30)
    intermediate_lifetime_days: int = Field(default=365, ge=7)
    crl_lifetime_days: int = Field(default=30, ge=1, description="nextUpdate of both CRLs")
    renew_fraction: float = Field(
        default=1 / 3, gt=0, lt=1, description="re-issue when less than this share of the lifetime is left"
    )


class PkiPlan(_Strict):
    """Everything the lab needs: the CA settings and every leaf, in a stable order."""

    ca: CaSettings = CaSettings()
    certs: tuple[CertSpec, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> PkiPlan:
        names = [c.name for c in self.certs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"certificate names must be unique: {', '.join(dupes)}")
        return self

    def get(self, name: str) -> CertSpec:
        for c in self.certs:
            if c.name == name:
                return c
        raise KeyError(name)

    def names(self) -> list[str]:
        return [c.name for c in self.certs]
