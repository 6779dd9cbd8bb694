"""Prompt-injection guard: ``get_guard().evaluate(text) -> GuardVerdict`` (pure Python, no FastAPI/DB)."""

from app.ai.guard.guard import Guard, GuardVerdict, get_guard

__all__ = ["Guard", "GuardVerdict", "get_guard"]
