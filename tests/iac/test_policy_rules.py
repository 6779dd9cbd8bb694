"""The CrossGuard validators, called directly (importing rules.py only, never the pack)."""

from __future__ import annotations

from typing import Any

import pytest

from iac.policy import rules

GOOD: dict[str, Any] = {
    "image": "postgres:15.10-bookworm", "readOnly": True, "capabilities": {"drops": ["ALL"]},
    "securityOpts": ["no-new-privileges:true"], "user": "999:999", "memory": 512 * 2**20,
    "healthcheck": {"tests": ["CMD", "pg_isready"]}, "restart": "unless-stopped",
    "labels": [{"label": "seclab.tier", "value": "data"}], "networksAdvanced": [{"name": "seclab-data"}],
    "envs": ["POSTGRES_PASSWORD_FILE=/run/secrets/p"],
}


class Args:
    def __init__(self, rtype: str, props: dict[str, Any]) -> None:
        self.resource_type, self.props, self.name = rtype, props, "x"


def _violations(policy: Any, rtype: str, props: dict[str, Any]) -> list[str]:
    out: list[str] = []
    policy.validate(Args(rtype, props), lambda msg, urn=None: out.append(msg))
    return out


def test_good_container_passes() -> None:
    assert _violations(rules.container_hardening, rules.CONTAINER, GOOD) == []


@pytest.mark.parametrize("change,expect", [
    ({"readOnly": False}, "read-only"),
    ({"capabilities": {"drops": ["NET_RAW"]}}, "drop ALL"),
    ({"securityOpts": []}, "no-new-privileges"),
    ({"user": "root"}, "non-root"),
    ({"user": "0:0"}, "non-root"),
    ({"memory": 0}, "memory"),
    ({"healthcheck": {"tests": ["NONE"]}}, "healthcheck"),
    ({"restart": "no"}, "restart"),
    ({"privileged": True}, "privileged"),
    ({"image": "postgres:latest"}, "pinned"),
    ({"image": "postgres"}, "pinned"),
    ({"ports": [{"internal": 5432, "external": 5432}]}, "publishes ports"),
    ({"envs": ["POSTGRES_PASSWORD=hunter2"]}, "looks like a secret"),
    ({"networksAdvanced": [{"name": "seclab-edge"}]}, "edge network"),
])
def test_each_rule_can_fail(change: dict[str, Any], expect: str) -> None:
    found = _violations(rules.container_hardening, rules.CONTAINER, {**GOOD, **change})
    assert any(expect in v for v in found), found


def test_network_rule() -> None:
    data = {"labels": [{"label": "seclab.tier", "value": "data"}], "internal": True}
    assert _violations(rules.network_isolation, rules.NETWORK, data) == []
    assert _violations(rules.network_isolation, rules.NETWORK, {**data, "internal": False})
    # Other resource types are not judged by the container rule.
    assert _violations(rules.container_hardening, rules.NETWORK, {"readOnly": False}) == []
