from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.pagination import decode_cursor, encode_cursor
from app.core.problems import Problem


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_roundtrip(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def test_none_means_first_page() -> None:
    assert decode_cursor(None) is None


@pytest.mark.parametrize("bad", ["", "!!", "djE6LTE", "djI6MQ", "YWJj", "x" * 65, encode_cursor(1) + "$"])
def test_invalid_cursor_is_422(bad: str) -> None:
    with pytest.raises(Problem) as exc:
        decode_cursor(bad)
    assert exc.value.status == 422


@given(st.text(max_size=80))
def test_any_text_is_a_cursor_or_a_422(text: str) -> None:
    try:
        value = decode_cursor(text)
    except Problem as exc:
        assert exc.status == 422
    else:
        assert value is None or 0 <= value <= 2**63 - 1
