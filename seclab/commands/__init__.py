"""Typer sub-apps mounted by `seclab.cli` (one module per area)."""
