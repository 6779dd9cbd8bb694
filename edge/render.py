"""Render the edge's nginx configuration (`edge/*.j2`) for one lab definition.

Why a Python renderer: the tests, the TLS benchmark and the Pulumi engine need exactly the files
Ansible's `template` module renders from the same `.j2` sources. The default of every `edge_*`
variable is read from playbooks/roles/edge/defaults/main.yml (the one documented list) and evaluated
by labdef.roles (the one evaluator of role defaults), so the two engines cannot drift apart.

    from edge.render import render
    conf = render(lab, out_dir, edge_pki_dir="/tmp/pki", edge_waf_enabled=False)
    # out_dir/nginx.conf, out_dir/snippets/seclab-*.conf; run nginx -c out_dir/nginx.conf
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from labdef import roles

TEMPLATE_DIR = Path(__file__).resolve().parent
DEFAULTS_FILE = roles.defaults_file("edge")

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


def template_vars(lab: Any, **overrides: Any) -> dict[str, Any]:
    """Every `edge_*` variable: the role's defaults evaluated against `lab` (labdef.roles, the one
    evaluator both engines share), then `overrides`. Ansible-only facts are absent: pass them as overrides."""
    unknown = sorted(k for k in overrides if not k.startswith("edge_"))
    if unknown:
        raise ValueError(f"not edge_* variables: {', '.join(unknown)}")
    missing = sorted(set(overrides) - set(roles.raw_defaults("edge")))
    if missing:
        raise ValueError(f"unknown edge variables (not in {DEFAULTS_FILE.name}): {', '.join(missing)}")
    return roles.role_defaults("edge", lab, **overrides)


def environment() -> jinja2.Environment:
    return roles.template_environment(TEMPLATE_DIR)


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
