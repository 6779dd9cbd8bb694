"""Request models at the API boundary: what they refuse (with a 422) before anything reaches PostgreSQL."""

from __future__ import annotations

import pydantic
import pytest

from app.models.api import ConversationCreate, MessageCreate


@pytest.mark.parametrize("title", ["a\x00b", "two\nlines", "tab\there", "bell\x07", "del\x7f", "esc\x1b[2J"])
def test_titles_refuse_control_characters(title: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        ConversationCreate(title=title)


def test_message_content_refuses_nul_only() -> None:
    with pytest.raises(pydantic.ValidationError, match="NUL"):
        MessageCreate(content="SELECT 1;\x00--")
    # pasted terminal output keeps its escapes and line structure: it is text/plain for the model
    kept = "$ ls --color\n\x1b[01;34mdir\x1b[0m\tfile\r\n"
    assert MessageCreate(content=kept).content == kept


def test_unknown_fields_are_refused() -> None:
    """Mass assignment (OWASP API3:2023): server-owned fields cannot be sent."""
    with pytest.raises(pydantic.ValidationError):
        MessageCreate.model_validate({"content": "hi", "guard": {"decision": "allow", "reasons": []}})
