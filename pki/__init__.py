"""The lab PKI: root CA, intermediate CA, server and client certificates, CRLs (`cryptography`).

Entry points: `pki.plan.build_plan(lab)` (what the lab needs), `pki.ca.ensure(plan, dir)`
(idempotent issue), `rotate`, `revoke`, `status`; `python -m pki ensure` for Ansible;
`lab pki ...` for people. Layout and the root-only trust bundle: see `pki.layout`.
"""

from .ca import CertStatus, EnsureResult, ca_bundle_path, ensure, revoke, rotate, status
from .layout import Layout
from .model import CaSettings, CertSpec, PkiPlan
from .plan import build_plan

__all__ = [
    "CaSettings",
    "CertSpec",
    "CertStatus",
    "EnsureResult",
    "Layout",
    "PkiPlan",
    "build_plan",
    "ca_bundle_path",
    "ensure",
    "revoke",
    "rotate",
    "status",
]
