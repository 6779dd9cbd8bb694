"""Chain, constraints, key usage and SANs, proven with cryptography's own path validator."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.layout import Layout
from pki.model import PkiPlan
from tests.pki.pki_support import EXTRA_HOST, cert, chain


def _builder(layout: Layout) -> v.PolicyBuilder:
    return v.PolicyBuilder().store(v.Store([cert(layout.ca_bundle)]))


def test_ca_bundle_is_root_only(layout: Layout) -> None:
    bundle = x509.load_pem_x509_certificates(layout.ca_bundle.read_bytes())
    assert bundle == [cert(layout.root_cert)]
    assert bundle[0].subject == bundle[0].issuer


@pytest.mark.parametrize("host", ["localhost", EXTRA_HOST])
def test_every_server_chain_verifies_for_each_host_name(plan: PkiPlan, layout: Layout, host: str) -> None:
    for spec in plan.certs:
        if spec.kind != "server":
            continue
        leaf, *intermediates = chain(layout.chain(spec.name))
        assert leaf == cert(layout.cert(spec.name))
        assert intermediates == [cert(layout.intermediate_cert)]
        verified = _builder(layout).build_server_verifier(v.DNSName(host)).verify(leaf, intermediates)
        assert verified[-1] == cert(layout.root_cert)


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_server_certs_verify_for_loopback_ips(layout: Layout, ip: str) -> None:
    leaf, *inter = chain(layout.chain("edge"))
    _builder(layout).build_server_verifier(v.IPAddress(ip_address(ip))).verify(leaf, inter)


def test_server_cert_is_refused_for_a_foreign_host_name(layout: Layout) -> None:
    leaf, *inter = chain(layout.chain("edge"))
    with pytest.raises(v.VerificationError):
        _builder(layout).build_server_verifier(v.DNSName("evil.example")).verify(leaf, inter)


def test_every_client_chain_verifies(plan: PkiPlan, layout: Layout) -> None:
    for spec in plan.certs:
        if spec.kind != "client":
            continue
        leaf, *inter = chain(layout.chain(spec.name))
        verified = _builder(layout).build_client_verifier().verify(leaf, inter)
        assert verified.subjects is not None
        assert x509.UniformResourceIdentifier(f"urn:seclab:client:{spec.name}") in verified.subjects


def test_eku_separates_servers_from_clients(layout: Layout) -> None:
    server_leaf, *inter = chain(layout.chain("postgres"))
    with pytest.raises(v.VerificationError):
        _builder(layout).build_client_verifier().verify(server_leaf, inter)
    client_leaf, *inter = chain(layout.chain("seclab_app"))
    with pytest.raises(v.VerificationError):
        _builder(layout).build_server_verifier(v.DNSName("localhost")).verify(client_leaf, inter)


def test_chain_without_intermediate_does_not_verify(layout: Layout) -> None:
    # Root-only trust: the intermediate must come with the leaf, it is not an anchor.
    leaf = cert(layout.cert("edge"))
    with pytest.raises(v.VerificationError):
        _builder(layout).build_server_verifier(v.DNSName("localhost")).verify(leaf, [])


def test_ca_constraints(layout: Layout) -> None:
    root, inter = cert(layout.root_cert), cert(layout.intermediate_cert)
    for c, path_len in ((root, 1), (inter, 0)):
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_len
        ku = c.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature and not ku.value.key_encipherment
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    ski_root = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski_root
    assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=5 * 365)
    assert timedelta(days=365) <= inter.not_valid_after_utc - inter.not_valid_before_utc < timedelta(days=366)


@pytest.mark.parametrize(
    ("name", "eku"),
    [("edge", ExtendedKeyUsageOID.SERVER_AUTH), ("edge-client", ExtendedKeyUsageOID.CLIENT_AUTH)],
)
def test_leaf_extensions(layout: Layout, name: str, eku: x509.ObjectIdentifier) -> None:
    leaf, inter = cert(layout.cert(name)), cert(layout.intermediate_cert)
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not ku.value.key_cert_sign and not ku.value.crl_sign and not ku.value.key_encipherment
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [eku]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        aki.key_identifier == inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=30) <= life <= timedelta(days=30, minutes=5)


def test_edge_sans(layout: Layout) -> None:
    san = cert(layout.cert("edge")).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", EXTRA_HOST} <= set(san.get_values_for_type(x509.DNSName))
    assert set(san.get_values_for_type(x509.IPAddress)) == {ip_address("127.0.0.1"), ip_address("::1")}
