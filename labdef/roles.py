"""The one renderer of the templates both engines use: Ansible role defaults evaluated against the lab.

Why here: every setting of a service is derived from the lab definition by the documented defaults of
its Ansible role (`playbooks/roles/<role>/defaults/main.yml`). The Pulumi engine, the tests and the
benchmarks render the same `.j2` files without Ansible, so they need those defaults evaluated the way
Ansible does, and in exactly one way: edge/render.py, waf_rules/render.py, monitoring/render.py and
iac/render.py all come here instead of each re-deriving (or retyping) the role's variables.
A template both engines render lives in a folder at the repository root (edge/, waf_rules/, monitoring/,
datastores/<service>/), never inside a role the other engine reaches into; a role names that folder in
`<role>_templates_dir` (the edge and postgresql roles do), so Ansible and `templates_dir` find the same files.

Needs Jinja2 and PyYAML (the controller's tooling); `import labdef` alone does not load this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.nativetypes import NativeEnvironment
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES_DIR = REPO_ROOT / "playbooks" / "roles"


class _Unrenderable:
    """A role default that needs Ansible itself (lookup(), playbook_dir, facts): absent from plain renders."""


def lab_dict(lab: Any) -> dict[str, Any]:
    """Accept a LabDefinition, its `as_vars` form ({"lab": ...}) or the plain dump."""
    if isinstance(lab, BaseModel):
        return lab.model_dump(mode="json")
    if isinstance(lab, dict) and "lab" in lab and "edge" not in lab:
        return dict(lab["lab"])
    return dict(lab)


def defaults_file(role: str) -> Path:
    return ROLES_DIR / role / "defaults" / "main.yml"


def raw_defaults(role: str) -> dict[str, Any]:
    """The role's defaults as written (unevaluated), in file order."""
    data = yaml.safe_load(defaults_file(role).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{defaults_file(role)}: expected a mapping")
    return data


def _eval(raw: Any, env: NativeEnvironment, values: dict[str, Any]) -> Any:
    if isinstance(raw, str) and "{{" in raw:
        return env.from_string(raw).render(**values)
    if isinstance(raw, dict):
        return {k: _eval(v, env, values) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_eval(v, env, values) for v in raw]
    return raw


def role_defaults(role: str, lab: Any, **overrides: Any) -> dict[str, Any]:
    """Every variable of `role`: its defaults evaluated against `lab` in file order, each seeing `lab`,
    `role_path`, the overrides and the earlier values (as Ansible does lazily); then the overrides.

    Defaults that need Ansible itself are left out, so a template that uses one fails loudly
    (StrictUndefined) instead of rendering a wrong value: pass such values as overrides.
    """
    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    values: dict[str, Any] = {"lab": lab_dict(lab), "role_path": str(ROLES_DIR / role)}
    for key, raw in raw_defaults(role).items():
        if key in overrides:
            values[key] = overrides[key]
            continue
        try:
            values[key] = _eval(raw, env, values)
        except jinja2.TemplateError:
            values[key] = _Unrenderable()
    values.update(overrides)
    return {k: v for k, v in values.items() if not isinstance(v, _Unrenderable)}


def template_environment(template_dir: str | Path) -> jinja2.Environment:
    """Jinja2 set up as Ansible's `template` module renders: both engines must produce the same bytes."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        autoescape=False,  # configuration files, not HTML
    )


def templates_dir(role: str, variables: dict[str, Any]) -> Path:
    """Where `role`'s templates live: its `<role>_templates_dir` (a shared folder at the repository root,
    e.g. datastores/postgresql/) when it has one, else the role's own templates/ (one engine only)."""
    return Path(variables.get(f"{role}_templates_dir") or ROLES_DIR / role / "templates").resolve()


def render_template(role: str, template: str, lab: Any, *, rendered_by: str, **overrides: Any) -> str:
    """One template of `role` rendered as Ansible's `template` module would, with the role's defaults
    evaluated against `lab`, then the overrides. The header line (`ansible_managed`, Ansible's own
    variable) names the renderer and the template."""
    variables = role_defaults(role, lab, **overrides)
    folder = templates_dir(role, variables)
    variables.setdefault("ansible_managed", f"Rendered by {rendered_by} from {(folder / template).relative_to(REPO_ROOT)}")
    return template_environment(folder).get_template(template).render(**variables)
