"""Render the WAF templates (`*.j2`) for one lab definition.

Why a Python renderer: the tests, the benchmark runners and the Pulumi engine need the same files
Ansible's `template` module renders from the same `.j2` sources (one copy of each template). The
variable names (`waf_*`) are the ones documented in playbooks/roles/waf/defaults/main.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import BaseModel

TEMPLATE_DIR = Path(__file__).resolve().parent
CRS_RULES_DIR = "/usr/share/modsecurity-crs/rules"
UNICODE_MAP_FILE = "/etc/nginx/unicode.mapping"
MODSEC_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"

# Template (relative to waf_rules/) -> rendered file (relative to out_dir).
TEMPLATES: dict[str, str] = {
    "main.conf.j2": "main.conf",
    "modsecurity.conf.j2": "modsecurity.conf",
    "crs-setup.conf.j2": "crs-setup.conf",
    "rules/crs-selection.conf.j2": "rules/crs-selection.conf",
    "rules/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf.j2": "rules/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",
    "rules/REQUEST-948-SECLAB-MESSAGE-FIELD.conf.j2": "rules/REQUEST-948-SECLAB-MESSAGE-FIELD.conf",
    "rules/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf.j2": "rules/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf",
}
NGINX_SNIPPETS = ("nginx/problem-pages.conf",)

Mode = Literal["blocking", "detection-only", "off"]
"""`off` (SecRuleEngine Off) only for a measurement: `lab bench --layers` row "edge TLS, WAF off"."""
ENGINE = {"blocking": "On", "detection-only": "DetectionOnly", "off": "Off"}


def _lab_dict(lab: Any) -> dict[str, Any]:
    """Accept a LabDefinition, its `as_vars` form ({"lab": ...}) or the plain dump."""
    if isinstance(lab, BaseModel):
        return lab.model_dump(mode="json")
    if isinstance(lab, dict) and "lab" in lab and "edge" not in lab:
        return dict(lab["lab"])
    return dict(lab)


def template_vars(
    lab: Any,
    out_dir: Path,
    audit_log_path: str | Path,
    mode_override: Mode | None = None,
    stock: bool = False,
    paranoia_override: int | None = None,
    crs_rules_dir: str = CRS_RULES_DIR,
    unicode_map_file: str = UNICODE_MAP_FILE,
    tmp_dir: str = "/tmp",
    conf_dir: str | None = None,
) -> dict[str, Any]:
    """The `waf_*` variables, computed from lab.yml the same way the Ansible role's defaults do."""
    d = _lab_dict(lab)
    waf = d.get("edge", {}).get("waf", {})
    limits = d.get("limits", {})
    mode = mode_override or waf.get("mode", "blocking")
    level = int(paranoia_override or waf.get("paranoia_level", 2))
    if level not in (1, 2, 3, 4):
        raise ValueError(f"paranoia level must be 1..4, got {level}")
    return {
        "lab": d,
        # Where the files will be read from: out_dir, unless rendered elsewhere and mounted (Pulumi).
        "waf_conf_dir": conf_dir or str(Path(out_dir).resolve()),
        "waf_crs_rules_dir": crs_rules_dir,
        "waf_unicode_map_file": unicode_map_file,
        "waf_tmp_dir": tmp_dir,
        "waf_audit_log_path": str(audit_log_path),
        "waf_engine": ENGINE.get(mode, "On"),
        "waf_paranoia_level": level,
        "waf_stock": stock,
        # PHP request rules stay on: benchmarks/waf/crs_regression.py shows the generic families miss
        # about half of the CRS PHP-injection stages, and the lab must block at least what stock CRS blocks.
        "waf_php_rules": True,
        # Java request/response rules off: no Java input path; the regression shows no loss without them.
        "waf_java_rules": False,
        "waf_body_max_bytes": int(limits.get("body_max_bytes", 65536)),
        # A message of message_max_chars characters is at most 4 bytes per character in UTF-8.
        "waf_message_max_bytes": 4 * int(limits.get("message_max_chars", 16000)),
    }


def render(
    lab: Any,
    out_dir: str | Path,
    audit_log_path: str | Path,
    mode_override: Mode | None = None,
    stock: bool = False,
    **overrides: Any,
) -> Path:
    """Render every template into `out_dir`; return the path of `main.conf` (nginx's modsecurity_rules_file).

    `stock=True` renders plain CRS (all rule files, no exclusions, no lab rules) at the same paranoia
    level: the baseline the benchmarks and tests compare the tuned configuration against.
    """
    out = Path(out_dir)
    variables = template_vars(lab, out, audit_log_path, mode_override=mode_override, stock=stock, **overrides)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,  # same whitespace handling as Ansible's template module
    )
    for src, dst in TEMPLATES.items():
        target = out / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(src).render(**variables), encoding="utf-8")
    for snippet in NGINX_SNIPPETS:
        target = out / snippet
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((TEMPLATE_DIR / snippet).read_text(encoding="utf-8"), encoding="utf-8")
    return out / "main.conf"
