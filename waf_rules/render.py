"""Render the WAF templates (`*.j2`) for one lab definition.

Why a Python renderer: the tests, the benchmark runners and the Pulumi engine need the same files
Ansible's `template` module renders from the same `.j2` sources (one copy of each template), with the
`waf_*` variables of playbooks/roles/waf/defaults/main.yml evaluated by labdef.roles, not retyped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from labdef import roles

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
    """The `waf_*` variables: the waf role's defaults evaluated against lab.yml (labdef.roles, the one
    evaluator both engines share), with the paths of this rendering and the benchmarks' overrides."""
    overrides: dict[str, Any] = {
        # Where the files will be read from: out_dir, unless rendered elsewhere and mounted (Pulumi).
        "waf_conf_dir": conf_dir or str(Path(out_dir).resolve()),
        "waf_crs_rules_dir": crs_rules_dir,
        "waf_unicode_map_file": unicode_map_file,
        "waf_tmp_dir": tmp_dir,
        "waf_audit_log_path": str(audit_log_path),
        "waf_stock": stock,
    }
    if mode_override is not None:
        overrides["waf_engine"] = ENGINE[mode_override]
    if paranoia_override:
        overrides["waf_paranoia_level"] = paranoia_override
    values = roles.role_defaults("waf", lab, **overrides)
    values["waf_paranoia_level"] = level = int(values["waf_paranoia_level"])
    if level not in (1, 2, 3, 4):
        raise ValueError(f"paranoia level must be 1..4, got {level}")
    return values


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
    env = roles.template_environment(TEMPLATE_DIR)
    for src, dst in TEMPLATES.items():
        target = out / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(src).render(**variables), encoding="utf-8")
    for snippet in NGINX_SNIPPETS:
        target = out / snippet
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((TEMPLATE_DIR / snippet).read_text(encoding="utf-8"), encoding="utf-8")
    return out / "main.conf"
