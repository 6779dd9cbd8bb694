"""CrossGuard rules for the lab's containers and networks, as plain functions plus validators.

Why split: `check_container`/`check_network` are pure and unit-tested; `__main__.py` only wires the
validators into a PolicyPack (constructing one starts a gRPC server, so tests never import it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
ALLOWED_RESTART = {"unless-stopped", "always", "on-failure"}


def _labels(props: Mapping[str, Any]) -> dict[str, str]:
    return {lab.get("label"): lab.get("value") for lab in props.get("labels") or []}


def _image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def check_container(props: Mapping[str, Any]) -> list[str]:
    """Every hardening property (CIS Docker Benchmark v1.6); returns one message per violation."""
    v: list[str] = []
    if props.get("read_only") is not True and props.get("readOnly") is not True:
        v.append("root filesystem must be read-only (CIS 5.12)")
    caps = props.get("capabilities") or {}
    if "ALL" not in (caps.get("drops") or []):
        v.append("capabilities must drop ALL (CIS 5.3)")
    opts = props.get("security_opts") or props.get("securityOpts") or []
    if not any(o.replace("=", ":") == "no-new-privileges:true" for o in opts):
        v.append("security_opts must contain no-new-privileges:true (CIS 5.25)")
    user = str(props.get("user") or "")
    if user.split(":")[0] in ("", "0", "root"):
        v.append("must run as a non-root user (CIS 4.1)")
    if not props.get("memory"):
        v.append("must have a memory limit (CIS 5.10)")
    tests = (props.get("healthcheck") or {}).get("tests") or []
    if not tests or tests[0] == "NONE":
        v.append("must have a healthcheck (CIS 4.6)")
    if props.get("restart") not in ALLOWED_RESTART:
        v.append(f"restart policy must be one of {sorted(ALLOWED_RESTART)} (CIS 5.14)")
    if props.get("privileged"):
        v.append("must not be privileged (CIS 5.4)")
    if props.get("network_mode") == "host" or props.get("networkMode") == "host":
        v.append("must not share the host network namespace (CIS 5.9)")
    image = str(props.get("image") or "")
    if image and not _image_pinned(image):
        v.append(f"image {image!r} must be pinned to an exact tag or digest (CIS 4.x, A08:2021)")
    tier = _labels(props).get("seclab.tier")
    if props.get("ports") and tier != "edge":
        v.append("only the edge tier publishes ports (CIS 5.13)")
    for env in props.get("envs") or []:
        name = str(env).split("=", 1)[0]
        if SECRET_ENV.search(name) and not name.endswith("_FILE") and not name.endswith("__FILE"):
            v.append(f"env {name} looks like a secret: pass a *_FILE path instead (ASVS 2.10.4)")
    nets = [n.get("name", "") for n in props.get("networks_advanced") or props.get("networksAdvanced") or []]
    if tier == "data" and any(str(n).endswith("-edge") for n in nets):
        v.append("a data-tier container must not join the edge network (ASVS 1.4.x segmentation)")
    return v


def check_network(props: Mapping[str, Any]) -> list[str]:
    tier = _labels(props).get("seclab.tier")
    if tier == "data" and props.get("internal") is not True:
        return ["the data network must be internal (no route outside the host)"]
    return []


def _validator(rtype: str, check: Callable[[Mapping[str, Any]], list[str]]):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != rtype:
            return
        for msg in check(args.props):
            report_violation(f"{args.name}: {msg}", None)

    return validate


container_hardening = ResourceValidationPolicy(
    name="seclab-container-hardening",
    description="Read-only, no capabilities, no-new-privileges, non-root, memory limit, healthcheck, "
    "restart policy, pinned image, no published ports off the edge, no inline secrets.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validator(CONTAINER, check_container),
)

network_isolation = ResourceValidationPolicy(
    name="seclab-network-isolation",
    description="The data network is internal.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validator(NETWORK, check_network),
)

POLICIES = [container_hardening, network_isolation]
