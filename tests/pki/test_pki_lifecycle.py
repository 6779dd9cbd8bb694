"""Files, modes, idempotence, renewal with a fake clock, rotation and revocation."""

from __future__ import annotations

import os
import pwd
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from labdef import LabDefinition
from pki.ca import EnsureResult, ensure, revoke, rotate, status
from pki.layout import Layout
from pki.model import PkiPlan
from pki.plan import build_plan
from tests.conftest import need
from tests.pki.pki_support import T0, cert


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_layout_and_modes(plan: PkiPlan, layout: Layout) -> None:
    assert _mode(layout.root_key) == 0o600
    assert _mode(layout.intermediate_key) == 0o600
    assert _mode(layout.private_dir) in (0o700, 0o710)
    assert _mode(layout.private_dir) & 0o007 == 0  # nobody else may even traverse
    for spec in plan.certs:
        assert _mode(layout.key(spec.name)) == 0o600, spec.name
        assert _mode(layout.cert(spec.name)) == 0o644
        assert layout.chain(spec.name).exists()
    for p in (layout.ca_bundle, layout.ca_chain, layout.crl_bundle, layout.intermediate_crl, layout.root_crl):
        assert p.is_file() and _mode(p) == 0o644
    # Atomic writes leave no temp files behind.
    assert not [p for p in layout.root.rglob(".*.tmp")]


def test_second_ensure_changes_nothing(plan: PkiPlan, pki_dir: Path) -> None:
    before = {p: p.read_bytes() for p in pki_dir.rglob("*") if p.is_file()}
    result = ensure(plan, pki_dir)
    assert result.changed is False
    assert result.issued == [] and result.fixed == [] and not result.crl_updated
    assert {p: p.read_bytes() for p in pki_dir.rglob("*") if p.is_file()} == before


def test_loose_key_mode_is_repaired_and_reported(plan: PkiPlan, layout: Layout) -> None:
    os.chmod(layout.key("edge"), 0o644)
    result = ensure(plan, layout.root)
    assert result.changed and str(layout.key("edge")) in result.fixed
    assert result.issued == []
    assert _mode(layout.key("edge")) == 0o600


def test_keys_belong_to_their_service_user(plan: PkiPlan, layout: Layout) -> None:
    need(os.geteuid() == 0, "root (chown)")
    for spec in plan.certs:
        try:
            want = pwd.getpwnam(spec.owner).pw_uid if spec.owner else 0
        except KeyError:
            want = 0  # owner absent on this host: skipped, left with root
        assert layout.key(spec.name).stat().st_uid == want, spec.name
    if any(spec.owner == "postgres" for spec in plan.certs):
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            need(False, "the postgres user (Debian's postgresql package)")
        assert layout.key("postgres").stat().st_uid == pwd.getpwnam("postgres").pw_uid


def test_leaves_renew_when_less_than_a_third_is_left(
    plan: PkiPlan, first_run: tuple[Path, EnsureResult]
) -> None:
    d, _ = first_run
    lay = Layout(d)
    old = {s.name: cert(lay.cert(s.name)).serial_number for s in plan.certs}
    # 19 days into a 30-day life: 11 days (> 1/3) left, nothing to do.
    assert ensure(plan, d, now=T0 + timedelta(days=19)).issued == []
    # 21 days in: 9 days (< 1/3) left, every leaf is re-issued, the CAs are not.
    later = ensure(plan, d, now=T0 + timedelta(days=21))
    assert set(later.issued) == set(plan.names())
    assert all(later.reasons[n] == "due for renewal" for n in plan.names())
    for s in plan.certs:
        assert cert(lay.cert(s.name)).serial_number != old[s.name]
    assert ensure(plan, d, now=T0 + timedelta(days=21)).changed is False


def test_intermediate_renewal_reissues_every_leaf(
    plan: PkiPlan, first_run: tuple[Path, EnsureResult]
) -> None:
    d, _ = first_run
    result = ensure(plan, d, now=T0 + timedelta(days=250))
    assert "intermediate" in result.issued and "root" not in result.issued
    assert set(plan.names()) <= set(result.issued)
    assert all(s.verifies for s in status(plan, d, now=T0 + timedelta(days=250)))


def test_crl_is_refreshed_before_it_expires(plan: PkiPlan, first_run: tuple[Path, EnsureResult]) -> None:
    d, _ = first_run
    lay = Layout(d)
    first = x509.load_pem_x509_crl(lay.intermediate_crl.read_bytes())
    result = ensure(plan, d, now=T0 + timedelta(days=21))  # CRL lives 30 days
    assert result.crl_updated
    second = x509.load_pem_x509_crl(lay.intermediate_crl.read_bytes())
    assert second.next_update_utc is not None and first.next_update_utc is not None
    assert second.next_update_utc > first.next_update_utc
    num = second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert num == first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1


def test_changed_host_names_reissue_only_affected_certs(
    lab: LabDefinition, plan: PkiPlan, pki_dir: Path
) -> None:
    data = lab.model_dump()
    data["edge"]["host_names"] = ["localhost", "chat.example.org"]
    result = ensure(build_plan(LabDefinition.model_validate(data)), pki_dir)
    servers = {s.name for s in plan.certs if s.kind == "server"}
    assert set(result.issued) == servers
    assert all(result.reasons[n] == "names or purpose changed" for n in servers)


def test_rotation_gives_new_serial_and_key(plan: PkiPlan, layout: Layout) -> None:
    old_cert, old_key = cert(layout.cert("redis")), layout.key("redis").read_bytes()
    other = layout.cert("postgres").read_bytes()
    result = rotate(plan, layout.root, ["redis"])
    assert result.issued == ["redis"]
    new_cert = cert(layout.cert("redis"))
    assert new_cert.serial_number != old_cert.serial_number
    assert new_cert.public_key() != old_cert.public_key()
    assert layout.key("redis").read_bytes() != old_key
    assert _mode(layout.key("redis")) == 0o600
    assert layout.cert("postgres").read_bytes() == other
    assert x509.load_pem_x509_certificates(layout.chain("redis").read_bytes())[0] == new_cert


def test_rotate_unknown_name_is_an_error(plan: PkiPlan, layout: Layout) -> None:
    with pytest.raises(KeyError):
        rotate(plan, layout.root, ["nope"])


def test_revoke_puts_serial_on_crl_and_ensure_replaces_it(plan: PkiPlan, layout: Layout) -> None:
    victim = cert(layout.cert("edge-client"))
    result = revoke(plan, layout.root, "edge-client", reason=x509.ReasonFlags.key_compromise)
    assert result.crl_updated and result.revoked == [format(victim.serial_number, "x")]
    crl = x509.load_pem_x509_crl(layout.intermediate_crl.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(victim.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    assert crl.is_signature_valid(cert(layout.intermediate_cert).public_key())  # type: ignore[arg-type]
    # The bundle nginx/PostgreSQL load holds both CRLs (they check the whole chain).
    assert (
        layout.crl_bundle.read_bytes() == layout.intermediate_crl.read_bytes() + layout.root_crl.read_bytes()
    )
    # Still on disk, and status says it is revoked.
    assert cert(layout.cert("edge-client")).serial_number == victim.serial_number
    row = next(s for s in status(plan, layout.root) if s.name == "edge-client")
    assert row.revoked and not row.verifies
    # The next ensure never keeps a revoked serial.
    again = ensure(plan, layout.root)
    assert again.issued == ["edge-client"] and again.reasons["edge-client"] == "revoked"
    assert cert(layout.cert("edge-client")).serial_number != victim.serial_number


def test_rotate_with_revoke_old_supersedes(plan: PkiPlan, layout: Layout) -> None:
    old = cert(layout.cert("worker")).serial_number
    rotate(plan, layout.root, ["worker"], revoke_old=True)
    crl = x509.load_pem_x509_crl(layout.intermediate_crl.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(old)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    )
    assert crl.get_revoked_certificate_by_serial_number(cert(layout.cert("worker")).serial_number) is None


def test_status_reports_days_left_with_fake_clock(
    plan: PkiPlan, first_run: tuple[Path, EnsureResult]
) -> None:
    d, _ = first_run
    rows = {r.name: r for r in status(plan, d, now=T0 + timedelta(days=10))}
    assert 19.9 <= rows["edge"].days_left <= 20.1
    assert rows["edge"].verifies
    expired = {r.name: r for r in status(plan, d, now=T0 + timedelta(days=31))}
    assert not expired["edge"].verifies
