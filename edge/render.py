"""Render the edge's nginx configuration (`edge/*.j2`) for one lab definition.

Why a Python renderer: the tests, the TLS benchmark and the Pulumi engine need exactly the files
Ansible's `template` module renders from the same `.j2` sources. The default of every `edge_*`
variable is read from playbooks/roles/edge/defaults/main.yml (the one documented list) and evaluated
here with plain Jinja, so the two engines cannot drift apart.

    from edge.render import render
    conf = render(lab, out_dir, edge_pki_dir="/tmp/pki", edge_waf_enabled=False)
    # out_dir/nginx.conf, out_dir/snippets/seclab-*.conf; run nginx -c out_dir/nginx.conf
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.nativetypes import NativeEnvironment
from pydantic import BaseModel

TEMPLATE_DIR = Path(__file__).resolve().parent
DEFAULTS_FILE = TEMPLATE_DIR.parent / "playbooks" / "roles" / "edge" / "defaults" / "main.yml"

# Template (relative to edge/) -> rendered file (relative to edge_conf_dir).
TEMPLATES: dict[str, str] = {
    "nginx.conf.j2": "nginx.conf",
    "snippets/seclab-security-headers.conf.j2": "snippets/seclab-security-headers.conf",
    "snippets/seclab-problems.conf.j2": "snippets/seclab-problems.conf",
    "snippets/seclab-problem-codes.conf.j2": "snippets/seclab-problem-codes.conf",
    "snippets/seclab-flower.conf.j2": "snippets/seclab-flower.conf",
    "snippets/seclab-proxy-headers.conf.j2": "snippets/seclab-proxy-headers.conf",
    "snippets/seclab-proxy-app.conf.j2": "snippets/seclab-proxy-app.conf",
    "snippets/seclab-proxy-idp.conf.j2": "snippets/seclab-proxy-idp.conf",
}


def _lab_dict(lab: Any) -> dict[str, Any]:
    """Accept a LabDefinition, its `as_vars` form ({"lab": ...}) or the plain dump."""
    if isinstance(lab, BaseModel):
        return lab.model_dump(mode="json")
    if isinstance(lab, dict) and "lab" in lab and "edge" not in lab:
        return dict(lab["lab"])
    return dict(lab)


def role_defaults() -> dict[str, Any]:
    """The raw (unevaluated) defaults of the Ansible edge role."""
    data = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{DEFAULTS_FILE}: expected a mapping")
    return data


def template_vars(lab: Any, **overrides: Any) -> dict[str, Any]:
    """Every `edge_*` variable: the role's defaults evaluated against `lab`, then `overrides`.

    Defaults are evaluated in file order, each seeing `lab`, the overrides and the earlier values
    (as Ansible does lazily). Ansible-only facts are absent here: pass them as overrides.
    """
    unknown = sorted(k for k in overrides if not k.startswith("edge_"))
    if unknown:
        raise ValueError(f"not edge_* variables: {', '.join(unknown)}")
    native = NativeEnvironment(undefined=jinja2.ChainableUndefined)
    values: dict[str, Any] = {"lab": _lab_dict(lab), "role_path": str(DEFAULTS_FILE.parents[1])}
    for key, raw in role_defaults().items():
        if key in overrides:
            values[key] = overrides[key]
        elif isinstance(raw, str) and "{{" in raw:
            values[key] = native.from_string(raw).render(**values)
        else:
            values[key] = raw
    missing = sorted(set(overrides) - set(values))
    if missing:
        raise ValueError(f"unknown edge variables (not in {DEFAULTS_FILE.name}): {', '.join(missing)}")
    return values


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,  # same whitespace handling as Ansible's template module
    )


def render(lab: Any, out_dir: str | Path, **overrides: Any) -> Path:
    """Render every template into `out_dir` (which becomes `edge_conf_dir`); return nginx.conf's path."""
    out = Path(out_dir).resolve()
    variables = template_vars(lab, **{"edge_conf_dir": str(out), **overrides})
    env = environment()
    for src, dst in TEMPLATES.items():
        target = out / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(src).render(**variables), encoding="utf-8")
    return out / "nginx.conf"
