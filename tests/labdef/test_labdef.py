"""The lab definition is the one source of truth: it must load, fill defaults, and reject mistakes
with the field and the line, because every engine renders from it."""

from __future__ import annotations

import pytest

import labdef

GOOD = """\
tenants:
  - name: acme
users:
  - username: alice
    tenant: acme
    roles: [user]
"""


def test_default_lab_file_has_the_issue_defaults() -> None:
    lab = labdef.load(labdef.DEFAULT_PATH)
    assert lab.tenant_names() == ["acme", "globex"]
    roles = {u.username: (u.tenant, set(u.roles)) for u in lab.users}
    assert roles["alice"] == ("acme", {"user"})
    assert roles["bob"] == ("globex", {"user"})
    assert "tenant-admin" in roles["carol"][1] and roles["carol"][0] == "acme"
    assert roles["admin"][1] == {"lab-admin"}


def test_defaults_are_filled_for_engines() -> None:
    data = labdef.as_vars(labdef.parse(GOOD))["lab"]
    assert data["ports"]["app"] == 8000
    assert data["identity"]["access_token_lifetime_s"] <= 300
    assert data["edge"]["waf"]["paranoia_level"] in (1, 2)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (GOOD.replace("roles: [user]", "roles: [root]"), 6, "users.0.roles.0"),
        (GOOD + "ports:\n  app: 70000\n", 8, "ports.app"),
        (GOOD + "portz: {}\n", 7, "portz"),
        (GOOD.replace("tenant: acme", "tenant: initech"), None, "unknown tenant"),
        (GOOD.replace("name: acme", "name: Acme-Corp"), 2, "tenants.0.name"),
    ],
)
def test_errors_name_the_field_and_line(text: str, line: int | None, field: str) -> None:
    with pytest.raises(labdef.LabDefinitionError) as exc:
        labdef.parse(text, "x.yml")
    msg = str(exc.value)
    assert field in msg
    if line is not None:
        assert msg.startswith(f"x.yml:{line}:"), msg


def test_invalid_yaml_is_reported_with_a_line() -> None:
    with pytest.raises(labdef.LabDefinitionError, match=r"x.yml:3: not valid YAML"):
        labdef.parse("tenants:\n  - name: acme\n  bad: [\n", "x.yml")


def test_tenant_roles_need_a_tenant_but_lab_admin_does_not() -> None:
    with pytest.raises(labdef.LabDefinitionError, match="need a tenant"):
        labdef.parse(GOOD.replace("    tenant: acme\n", ""))
    ok = labdef.parse(GOOD + "  - username: root_op\n    roles: [lab-admin]\n")
    assert ok.user("root_op").tenant is None


def test_fallback_must_name_known_providers() -> None:
    with pytest.raises(labdef.LabDefinitionError, match="unknown providers: nope"):
        labdef.parse(GOOD + "ai:\n  fallback: [nope]\n")


def test_redis_replica_and_sentinel_ports_are_defined_and_distinct(tmp_path: object) -> None:
    lab = labdef.load(labdef.DEFAULT_PATH)
    assert lab.ports.redis_data_nodes() == [6379, 6380]
    assert lab.ports.redis_sentinels() == [26379, 26380, 26381]
    ports = list(lab.ports.model_dump().values())
    assert len(ports) == len(set(ports))
    with pytest.raises(ValueError, match="redis_sentinel_2 are both 26379|redis_sentinel_1 and redis_sentinel_2"):
        labdef.Ports(redis_sentinel_2=26379)
    with pytest.raises(ValueError, match="redis and redis_replica are both 6379"):
        labdef.Ports(redis_replica=6379)
