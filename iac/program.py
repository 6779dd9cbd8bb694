"""The lab as Docker containers: `build` composes one component per part of the lab.

Parts (iac/components.py, type `seclab:component:<Part>`): data (PostgreSQL, Redis), logging
(OpenSearch, its mTLS gateway, the rsyslog shipper, the keeper: the logsearch role's), app (API + db-sync job), worker, model (llama.cpp), identity
(Keycloak + the lab users' credentials), monitoring (Prometheus, Alertmanager, exporters, Grafana) and
edge (nginx + ModSecurity, the only published ports). What they share (settings, networks, generated
secrets, images, log volumes) is iac/context.py; every container is hardened by iac/hardening.py.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

from .components import App, Data, Edge, Identity, Logging, Model, Monitoring, Worker, ops_url
from .config import load_settings
from .context import NETWORKS, Context
from .services import Service


def build() -> dict[str, Service]:
    """Declare every resource; returns the services by name (the tests walk them)."""
    s = load_settings()
    ctx = Context.create(s)
    # The PII mapping key: 32 random bytes as URL-safe base64, the format the secrets role writes.
    pii_key = random.RandomBytes("pii-key", length=32)
    pii_key_b64: pulumi.Output[str] = pulumi.Output.secret(
        pii_key.base64.apply(lambda v: v.replace("+", "-").replace("/", "_")))
    canary: pulumi.Output[str] = pulumi.Output.secret(
        ctx.pw["llm-canary"].result.apply(lambda v: f"SECLAB-CANARY-{v}"))

    Data(ctx)
    if s.lab.logging.engine == "opensearch":  # lab.yml logging.engine: none leaves it out, as natively
        Logging(ctx)
    App(ctx, pii_key_b64)
    Worker(ctx, pii_key_b64, canary)
    Model(ctx)
    identity = Identity(ctx)
    Monitoring(ctx)
    Edge(ctx)

    pulumi.export("edge_url", s.lab.edge_url)
    pulumi.export("issuer", s.lab.issuer)
    pulumi.export("ops_url", ops_url(s))
    pulumi.export("realm_export", str(s.secrets_dir / "idp" / "realm.json"))
    pulumi.export("user_secrets_dir", str(identity.users_dir))
    pulumi.export("ca_cert", s.tls("edge").ca)
    pulumi.export("services", sorted(ctx.services))
    pulumi.export("grafana_admin_password", ctx.secret("grafana-admin"))
    pulumi.export("keycloak_admin_password", ctx.secret("keycloak-admin"))
    return ctx.services


__all__ = ["NETWORKS", "build"]
