"""Render the monitoring templates with plain Jinja2 (Pulumi engine, tests).

Ansible renders the very same files with its role variables; here only `lab` (labdef.as_vars)
is required and every `monitoring_*` variable may be passed as an override (e.g. container names
in `monitoring_targets` for the Docker engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from labdef import roles

HERE = Path(__file__).resolve().parent

TEMPLATES = {
    "prometheus.yml": "prometheus.yml.j2",
    "alertmanager.yml": "alertmanager.yml.j2",
    "rules/lab-targets.yml": "rules/lab-targets.yml.j2",
}
"""Rendered file (relative to the monitoring config directory) -> template under monitoring/."""

STATIC_RULES = ("rules/seclab.yml", "rules/logsearch.yml")
"""Rule files copied as they are."""


def _env() -> jinja2.Environment:
    # StrictUndefined: a misspelt lab field is an error, not an empty string in a config file.
    return roles.template_environment(HERE)


def render(template: str, lab_vars: dict[str, Any], **overrides: Any) -> str:
    return _env().get_template(template).render(**lab_vars, **overrides)


def render_all(lab_vars: dict[str, Any], **overrides: Any) -> dict[str, str]:
    """{relative path: text} of every file Prometheus and Alertmanager read."""
    out = {dest: render(src, lab_vars, **overrides) for dest, src in TEMPLATES.items()}
    for rel in STATIC_RULES:
        out[rel] = (HERE / rel).read_text(encoding="utf-8")
    return out


def write_all(directory: Path, lab_vars: dict[str, Any], **overrides: Any) -> list[Path]:
    written = []
    for rel, text in render_all(lab_vars, **overrides).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
