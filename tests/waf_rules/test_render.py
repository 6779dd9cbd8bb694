"""Rendering of the WAF templates: both paranoia levels, both modes, stock and tuned, `nginx -t` clean."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from waf_rules.render import TEMPLATE_DIR, TEMPLATES, render, template_vars

ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "waf" / "defaults" / "main.yml"


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("mode", ["blocking", "detection-only"])
@pytest.mark.parametrize("stock", [False, True])
def test_render_and_nginx_syntax(lab: Any, waf_packages: None, tmp_path: Path, level: int, mode: str,
                                 stock: bool) -> None:
    from benchmarks.waf.local import nginx_test_config

    main = render(lab, tmp_path / "waf", tmp_path / "audit.json", mode_override=mode,  # type: ignore[arg-type]
                  stock=stock, paranoia_override=level)
    modsec = (tmp_path / "waf" / "modsecurity.conf").read_text()
    setup = (tmp_path / "waf" / "crs-setup.conf").read_text()
    engine = "DetectionOnly" if mode == "detection-only" else "On"
    assert re.search(rf"^SecRuleEngine {engine}$", modsec, re.MULTILINE)
    assert re.search(rf"setvar:tx\.paranoia_level={level}\"", setup)
    assert f"SecAuditLog {tmp_path / 'audit.json'}" in modsec
    assert "SecAuditLogFormat JSON" in modsec
    assert "SecRequestBodyNoFilesLimit 65536" in modsec  # lab.yml limits.body_max_bytes
    main_text = main.read_text()
    assert ("REQUEST-900-EXCLUSION-RULES-BEFORE-CRS" in main_text) is (not stock)
    result = nginx_test_config(main, tmp_path / "waf" / "nginx" / "problem-pages.conf")
    assert result.returncode == 0, result.stderr


def test_tuned_selection_switches_off_irrelevant_files(lab: Any, tmp_path: Path) -> None:
    render(lab, tmp_path, tmp_path / "audit.json")
    sel = (tmp_path / "rules" / "crs-selection.conf").read_text()
    included = re.findall(r"^Include \S+/([^/\s]+\.conf)$", sel, re.MULTILINE)
    for off in ("DRUPAL", "WORDPRESS", "NEXTCLOUD", "DOKUWIKI", "CPANEL", "XENFORO", "944-APPLICATION-ATTACK-JAVA",
                "952-DATA-LEAKAGES-JAVA", "953-DATA-LEAKAGES-PHP", "954-DATA-LEAKAGES-IIS"):
        assert not any(off in f for f in included), off
    for on in ("920-PROTOCOL", "932-APPLICATION-ATTACK-RCE", "941-APPLICATION-ATTACK-XSS",
               "942-APPLICATION-ATTACK-SQLI", "949-BLOCKING-EVALUATION", "948-SECLAB-MESSAGE-FIELD"):
        assert any(on in f for f in included), on
    # The lab's message rules must score before the blocking evaluation.
    assert included.index("REQUEST-948-SECLAB-MESSAGE-FIELD.conf") < included.index("REQUEST-949-BLOCKING-EVALUATION.conf")


def test_audit_log_keeps_no_tokens_or_chat_text(lab: Any, tmp_path: Path) -> None:
    """Parts B (request headers: bearer tokens, cookies), I/J (request bodies: chat text, PII) and E
    (response bodies: model answers) stay out of the audit log (ASVS 4.0.3 V7.1.1/V7.1.2)."""
    render(lab, tmp_path, tmp_path / "audit.json")
    conf = next(p for p in tmp_path.rglob("*.conf") if "SecAuditLogParts" in p.read_text())
    parts = re.search(r"^SecAuditLogParts (\S+)$", conf.read_text(), re.MULTILINE)
    assert parts is not None
    assert set("AHZ") <= set(parts.group(1)) and not set("BIJE") & set(parts.group(1)), parts.group(1)


def test_exclusions_only_touch_the_message_field_and_keycloak_cookies(lab: Any, tmp_path: Path) -> None:
    """Every runtime exclusion names ARGS:json.content (or REQUEST_BODY), or one of Keycloak's cookies, and
    sits behind its route match."""
    render(lab, tmp_path, tmp_path / "audit.json")
    text = (tmp_path / "rules" / "REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf").read_text()
    ctls = re.findall(r"ctl:(ruleRemove\w+)=([^,\"\s]+)", text)
    assert ctls, "no exclusions found"
    for kind, arg in ctls:
        if (kind, arg) == ("ruleRemoveById", "913101"):
            continue  # the one whole-rule removal: scripted-client User-Agents on the API routes only
        assert kind in ("ruleRemoveTargetById", "ruleRemoveTargetByTag"), kind  # never a whole rule
        tag, target = arg.split(";")
        if target.startswith("REQUEST_COOKIES:"):  # Keycloak's own cookies: SQLi/XSS only, named ones only
            assert kind == "ruleRemoveTargetByTag" and tag in ("attack-sqli", "attack-xss"), arg
            assert re.fullmatch(r"REQUEST_COOKIES:(?:KC|AUTH_SESSION|KEYCLOAK)_[A-Z_]+", target), arg
            continue
        if target in ("ARGS:id_token_hint", "ARGS:refresh_token"):  # Keycloak's JWT parameters: SQLi only
            assert kind == "ruleRemoveTargetByTag" and tag == "attack-sqli", arg
            continue
        assert target in ("ARGS:json.content", "REQUEST_BODY"), arg
    kc = re.search(r'SecRule REQUEST_FILENAME "([^"]+)"\s*\\\s*"id:1000120,', text)
    assert kc and kc.group(1).startswith("@rx ^/realms/[A-Za-z0-9_-]{1,64}/(?:login-actions/"), "cookie exclusion must be route-bound"
    jwt = re.search(r'SecRule REQUEST_FILENAME "([^"]+)"\s*\\\s*"id:1000121,', text)
    assert jwt and jwt.group(1) == "@rx ^/realms/[A-Za-z0-9_-]{1,64}/protocol/openid-connect/(?:token|logout)$", \
        "the JWT-parameter exclusion must be bound to Keycloak's token and logout endpoints"
    whole = re.search(r'SecRule REQUEST_FILENAME "([^"]+)"[^;]*?ctl:ruleRemoveById=913101', text, re.DOTALL)
    assert whole and whole.group(1).startswith("@rx ^/(?:api/v1/|realms/"), "913101 removal must be route-bound"
    assert "REQUEST_FILENAME \"@rx ^/api/v1/conversations/[A-Za-z0-9_-]{1,64}/messages$\"" in text
    after = (tmp_path / "rules" / "RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf").read_text()
    assert not re.search(r"^\s*SecRule(Remove|Update)", after, re.MULTILINE)


def test_every_template_variable_is_documented_in_the_role() -> None:
    """The Ansible role renders the same templates: each waf_* variable needs a documented default."""
    used: set[str] = set()
    for src in TEMPLATES:
        for expr in re.findall(r"\{[{%].*?[%}]\}", (TEMPLATE_DIR / src).read_text()):
            unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", expr)  # names only, not string literals
            used |= set(re.findall(r"\b(waf_[a-z_]+)\b", unquoted))
    assert "waf_paranoia_level" in used and "waf_engine" in used
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    assert used - set(defaults) == set()
    text = ROLE_DEFAULTS.read_text()
    for name in used:  # documented: a comment line right above the variable
        assert re.search(rf"#[^\n]*\n{name}:", text), f"{name} has no comment in defaults/main.yml"


def test_template_vars_follow_lab_definition(lab: Any, tmp_path: Path) -> None:
    data = lab.model_dump(mode="json")
    data["edge"]["waf"] = {"paranoia_level": 1, "mode": "detection-only"}
    data["limits"]["body_max_bytes"] = 2048
    v = template_vars(data, tmp_path, "/x.json")
    assert (v["waf_paranoia_level"], v["waf_engine"], v["waf_body_max_bytes"]) == (1, "DetectionOnly", 2048)
    with pytest.raises(ValueError):
        template_vars(data, tmp_path, "/x.json", paranoia_override=7)
