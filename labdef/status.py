"""Where the lab's services listen and whether they answer (behind `lab status`, load runs, token helpers).

Probes speak each service's protocol (TCP accept, HTTP health) instead of trusting the process
manager: a running process that does not answer is not "up" for the person using the lab.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx

from labdef import LabDefinition


def _tcp_up(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_ok(url: str, verify: Any = False, timeout: float = 2.0) -> bool:
    try:
        r = httpx.get(url, verify=verify, timeout=timeout)
        return r.status_code < 500
    except (httpx.HTTPError, ssl.SSLError, OSError):
        return False


def ca_cert_path(lab: LabDefinition) -> Path:
    return Path(lab.paths.pki) / "ca" / "ca-bundle.crt"


def realm_export_path(lab: LabDefinition) -> Path:
    return Path(lab.paths.data) / "realm" / "realm-export.json"


def idp_info(lab: LabDefinition) -> dict[str, Any]:
    """Keycloak as the keycloak role recorded it in `<etc>/idp.json` (its version and issuer)."""
    recorded = Path(lab.paths.etc) / "idp.json"
    info: dict[str, Any] = {"kind": "keycloak", "version": lab.identity.keycloak_version, "issuer": lab.issuer}
    try:
        data = json.loads(recorded.read_text())
        info.update({k: data[k] for k in ("kind", "version", "issuer") if k in data})
    except (OSError, ValueError):
        pass
    # Keycloak serves HTTPS on loopback with the lab certificate `idp` (verified against the lab root).
    info["internal_url"] = f"https://127.0.0.1:{lab.ports.idp}"
    info["label"] = f"Keycloak {info['version']}" if info["kind"] == "keycloak" else str(info["kind"])
    return info


def idp_verify(lab: LabDefinition) -> ssl.SSLContext | bool:
    """How to verify Keycloak on loopback: the lab root when it exists (no CA yet: nothing to trust)."""
    ca = ca_cert_path(lab)
    try:
        return ssl.create_default_context(cafile=str(ca))
    except OSError:
        return False


def edge_url(lab: LabDefinition) -> str:
    return lab.edge_url


def app_mtls_context(lab: LabDefinition) -> ssl.SSLContext:
    """A client context as the edge's to the app: the lab CA and the edge's client certificate
    (edge/snippets/seclab-proxy-app.conf.j2). Raises OSError/ssl.SSLError without them (not root, no PKI)."""
    pki = Path(lab.paths.pki)
    ctx = ssl.create_default_context(cafile=str(pki / "ca" / "ca-bundle.crt"))
    ctx.load_cert_chain(str(pki / "certs" / "edge-client.chain.crt"), str(pki / "private" / "edge-client.key"))
    return ctx


def _mtls_ok(url: str, lab: LabDefinition, timeout: float = 2.0) -> bool:
    """The API only talks to holders of a lab client certificate: probe it as the edge does."""
    try:
        ctx = app_mtls_context(lab)
    except (OSError, ssl.SSLError):
        # Not root, or no PKI yet: fall back to "something accepts connections".
        return _tcp_up(int(url.rsplit(":", 1)[1].split("/")[0]))
    return _http_ok(url, verify=ctx, timeout=timeout)


def _edge_ok(lab: LabDefinition) -> bool:
    ca = ca_cert_path(lab)
    if not ca.exists():
        return _tcp_up(lab.ports.edge_https)
    return _http_ok(f"{lab.edge_url}/healthz", verify=ssl.create_default_context(cafile=str(ca)))


def _env_value(lab: LabDefinition, key: str, default: str) -> str:
    """One setting of the rendered app environment (`<etc>/app.env`), or the default without it."""
    try:
        for line in (Path(lab.paths.etc) / "app.env").read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return default


def redis_primary(lab: LabDefinition, timeout: float = 1.0) -> str | None:
    """`host:port` of the Redis primary as the sentinels name it (the first that answers), None if
    none does or the caller cannot read the app's client certificate and password (not root).

    Asks as the app would: mTLS with the app-redis certificate and the app's ACL user, which may only
    discover the primary on a sentinel (playbooks/roles/redis: redis_sentinel_client_rules)."""
    import redis

    pki = Path(lab.paths.pki)
    try:
        password = (Path(lab.paths.secrets) / "redis_app_password").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    name = _env_value(lab, "SECLAB_REDIS_MASTER_NAME", "seclab")
    for port in lab.ports.redis_sentinels():
        client = redis.Redis(
            host="127.0.0.1", port=port, username="seclab_app", password=password, ssl=True,
            ssl_ca_certs=str(pki / "ca" / "ca-bundle.crt"), ssl_certfile=str(pki / "certs" / "app-redis.chain.crt"),
            ssl_keyfile=str(pki / "private" / "app-redis.key"), socket_timeout=timeout, socket_connect_timeout=timeout,
        )
        try:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
        except (redis.RedisError, OSError):
            continue
        finally:
            client.close()
        if addr:
            host, prt = (a.decode() if isinstance(a, bytes) else str(a) for a in addr)
            return f"{host}:{prt}"
    return None


def collect(lab: LabDefinition) -> dict[str, Any]:
    idp = idp_info(lab)
    p = lab.ports
    loop = "127.0.0.1"
    services: dict[str, dict[str, Any]] = {
        "edge": {"up": _edge_ok(lab), "address": f"0.0.0.0:{p.edge_https}"},
        "app": {"up": _mtls_ok(f"https://{loop}:{p.app}/healthz", lab), "address": f"{loop}:{p.app} (mTLS)"},
        "idp": {
            "up": _http_ok(
                f"{idp['internal_url']}/realms/{lab.identity.realm}/.well-known/openid-configuration",
                verify=idp_verify(lab),
            ),
            "address": f"{loop}:{p.idp} (HTTPS)",
            "kind": idp["kind"],
            "version": idp["version"],
        },
        "postgres": {"up": _tcp_up(p.postgres), "address": f"{loop}:{p.postgres}"},
        "redis": {"up": _tcp_up(p.redis), "address": f"{loop}:{p.redis}"},
        "redis_replica": {"up": _tcp_up(p.redis_replica), "address": f"{loop}:{p.redis_replica}"},
        "redis_sentinels": {
            "up": all(_tcp_up(port) for port in p.redis_sentinels()),
            "address": ", ".join(f"{loop}:{port}" for port in p.redis_sentinels()),
        },
        "llama": {"up": _tcp_up(p.llama), "address": f"{loop}:{p.llama}"},
        "prometheus": {"up": _http_ok(f"http://{loop}:{p.prometheus}/-/ready"), "address": f"{loop}:{p.prometheus}"},
        "alertmanager": {
            "up": _http_ok(f"http://{loop}:{p.alertmanager}/-/ready"),
            "address": f"{loop}:{p.alertmanager}",
        },
        "node_exporter": {"up": _tcp_up(p.node_exporter), "address": f"{loop}:{p.node_exporter}"},
        "postgres_exporter": {"up": _tcp_up(p.postgres_exporter), "address": f"{loop}:{p.postgres_exporter}"},
        "redis_exporter": {"up": _tcp_up(p.redis_exporter), "address": f"{loop}:{p.redis_exporter}"},
        "nginx_exporter": {"up": _tcp_up(p.nginx_exporter), "address": f"{loop}:{p.nginx_exporter}"},
    }
    return {
        "lab": lab.name,
        "edge": {"url": edge_url(lab), "ca_cert": str(ca_cert_path(lab))},
        "api": {"url": f"{edge_url(lab)}/api/v1", "internal_url": f"https://{loop}:{p.app}/api/v1"},
        "idp": {"issuer": idp["issuer"], "kind": idp["kind"], "version": idp["version"], "label": idp["label"]},
        "realm_export": str(realm_export_path(lab)),
        # Which data node is primary right now (it moves on failover): the sentinels' answer.
        "redis_primary": redis_primary(lab) if services["redis_sentinels"]["up"] else None,
        "services": services,
    }
