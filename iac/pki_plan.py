"""The Docker engine's certificate plan: `pki.plan.build_plan(lab)` plus what only this engine runs.

Why an extension here and not in pki/: a service that only this engine ran would need its own server
certificate here. None does today (the log search engine, its gateway, shipper and keeper use the
shared plan's `logsearch`, `log-shipper` and `log-reader` leaves, as natively); every leaf comes from the
shared plan unchanged (same names, SANs, lifetimes), so a service cannot get a certificate on one
engine and miss it on the other. `seclab.engines.pulumi_engine.up` issues this plan with `pki.ca.ensure` before the stack runs.
"""

from __future__ import annotations

from labdef import LabDefinition
from pki.model import CertSpec, PkiPlan
from pki.plan import LOOPBACK_DNS, LOOPBACK_IPS, build_plan

DOCKER_SERVERS: dict[str, str] = {}
"""Leaf name -> purpose of servers only the Docker engine runs (none today)."""


def docker_plan(lab: LabDefinition) -> PkiPlan:
    base = build_plan(lab)
    hosts = list(dict.fromkeys([*LOOPBACK_DNS, *lab.edge.host_names]))
    leaf_days = base.get("app").lifetime_days
    extra = tuple(
        CertSpec(name=name, kind="server", common_name=name, dns_names=tuple(dict.fromkeys([*hosts, name])),
                 ip_addresses=LOOPBACK_IPS, owner=None, lifetime_days=leaf_days, purpose=purpose,
                 reload_hint=f"docker restart {lab.name}-{name}")
        for name, purpose in DOCKER_SERVERS.items()
    )
    return PkiPlan(ca=base.ca, certs=base.certs + extra)
