from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from app.db.audit import GENESIS, AuditRow, canonical_detail, canonical_text, row_hash, verify_chain


def _chain(n: int) -> list[AuditRow]:
    rows: list[AuditRow] = []
    prev = GENESIS
    t0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    for i in range(1, n + 1):
        draft = AuditRow(id=i, ts=t0 + timedelta(seconds=i), actor=f"user{i}", action="message.create",
                         target=f"t{i}", detail=canonical_detail({"n": i}), prev_hash=prev, hash="")
        row = draft.model_copy(update={"hash": row_hash(draft)})
        rows.append(row)
        prev = row.hash
    return rows


def test_intact_chain_verifies() -> None:
    assert verify_chain("t.audit_log", _chain(5)) is None
    assert verify_chain("t.audit_log", []) is None


def test_tampered_content_named() -> None:
    rows = _chain(5)
    rows[2] = rows[2].model_copy(update={"detail": '{"n":999}'})
    brk = verify_chain("t.audit_log", rows)
    assert brk is not None and (brk.table, brk.id) == ("t.audit_log", 3)


def test_rehashed_row_breaks_the_next_link() -> None:
    rows = _chain(5)
    forged = rows[1].model_copy(update={"actor": "mallory"})
    rows[1] = forged.model_copy(update={"hash": row_hash(forged)})
    brk = verify_chain("t.audit_log", rows)
    assert brk is not None and brk.id == 3 and "prev_hash" in brk.reason


def test_deleted_row_named() -> None:
    rows = _chain(5)
    del rows[1]
    brk = verify_chain("t.audit_log", rows)
    assert brk is not None and brk.id == 3


def test_canonical_form_is_length_prefixed_and_utc() -> None:
    row = AuditRow(id=7, ts=datetime(2026, 1, 1, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))), actor="a|b",
                   action="x", target="", detail="{}", prev_hash=GENESIS, hash="")
    assert canonical_text(row) == f"1:7|27:2026-01-01T12:00:00.000005Z|3:a|b|1:x|0:|2:{{}}|64:{GENESIS}"


def test_field_boundaries_cannot_be_shifted() -> None:
    a = AuditRow(id=1, ts=datetime(2026, 1, 1, tzinfo=UTC), actor="ab", action="c", target="", detail="{}",
                 prev_hash=GENESIS, hash="")
    b = a.model_copy(update={"actor": "a", "action": "bc"})
    assert row_hash(a) != row_hash(b)
