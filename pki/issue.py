"""Issuing with `cryptography`: keys, the root, the intermediate, leaves and CRLs.

Pure functions (no files): the caller decides where things go, tests can issue in memory.
Extensions follow RFC 5280 and the profile that cryptography's own verifier enforces, so the
tests can prove the chain with `cryptography.x509.verification` rather than trusting ourselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .model import CertSpec, KeyAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Backdate notBefore a little: a peer whose clock is a few seconds behind must not reject a
# certificate issued just now (common practice of public CAs; RFC 5280 4.1.2.5 allows it).
BACKDATE = timedelta(minutes=5)


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A fresh key; every issue and every rotation gets its own (ASVS 6.4.2: keys not reused)."""
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    # SHA-384 with P-384 keeps the security levels matched (NIST SP 800-57); SHA-256 otherwise.
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def key_pem(key: PrivateKey) -> bytes:
    # Unencrypted PKCS#8: nginx, PostgreSQL and Redis load keys unattended; protection is the
    # file mode and owner (0600, service user), not a passphrase stored next to the key.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(data: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError("unsupported private key type")
    return cast(PrivateKey, key)


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _ca_key_usage() -> x509.KeyUsage:
    # A CA key signs certificates and CRLs, nothing else (RFC 5280 4.2.1.3).
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def issue_root(key: PrivateKey, cn: str, org: str, now: datetime, days: int) -> x509.Certificate:
    """Self-signed root, pathLen 1: it may sign exactly one level of CA below it (the intermediate)."""
    name = _name(cn, org)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hash_for(key))
    )


def issue_intermediate(
    key: PrivateKey,
    cn: str,
    org: str,
    root_cert: x509.Certificate,
    root_key: PrivateKey,
    now: datetime,
    days: int,
) -> x509.Certificate:
    """Intermediate, pathLen 0: it signs leaves only, so a stolen leaf key can never act as a CA."""
    not_after = min(now + timedelta(days=days), root_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_aki(root_cert), critical=False)
        .sign(root_key, hash_for(root_key))
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def issue_leaf(
    spec: CertSpec, key: PrivateKey, ca_cert: x509.Certificate, ca_key: PrivateKey, org: str, now: datetime
) -> x509.Certificate:
    """A server or client leaf: short-lived, digitalSignature only, one EKU, names in the SAN."""
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
    sans += [x509.IPAddress(ip) for ip in spec.ip_addresses]
    sans += [x509.UniformResourceIdentifier(u) for u in spec.uris]
    eku = ExtendedKeyUsageOID.SERVER_AUTH if spec.kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    # RSA key exchange needs keyEncipherment; ECDHE with ECDSA or RSA signatures needs only
    # digitalSignature (RFC 5480 3, Mozilla TLS: no static RSA key exchange).
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    not_after = min(now + timedelta(days=spec.lifetime_days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(spec.common_name, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_aki(ca_cert), critical=False)
        .sign(ca_key, hash_for(ca_key))
    )


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    revoked: list[x509.RevokedCertificate],
    number: int,
    now: datetime,
    days: int,
) -> x509.CertificateRevocationList:
    """A CRL signed by `ca_cert` (ASVS 9.2.x: peers must be able to refuse a revoked certificate)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_aki(ca_cert), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hash_for(ca_key))


def revoked_entry(serial: int, when: datetime, reason: x509.ReasonFlags) -> x509.RevokedCertificate:
    return (
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(when)
        .add_extension(x509.CRLReason(reason), critical=False)
        .build()
    )


def sans_of(cert: x509.Certificate) -> list[str]:
    """SANs as plain strings for status output."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = []
    for gn in ext:
        out.append(str(gn.value))
    return out
