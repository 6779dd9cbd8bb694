"""Redis hardening: no default user, ACL users per component, protected mode, loopback, TLS, file modes.

Why both the files and the live server: the files say what the redis role rendered, the server says
what is in effect (a server started with another file, or never restarted, would show here). Live
checks authenticate as the lab's own ACL users with the passwords under lab.paths.secrets, read on the
host into the client's environment (REDISCLI_AUTH), never onto a command line or into a test log.
References: Redis security guide (redis.io/docs/latest/operate/oss_and_stack/management/security/),
Redis ACL guide, OWASP ASVS 4.0.3 V4.1.3 (least privilege).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from tests.infra.conftest import role_default, sh

CONFIG = role_default("redis", "redis_config")
ACLFILE = role_default("redis", "redis_aclfile")
# The components' users, then replication's and Sentinel's (issue 14: replica + sentinels).
ACL_USERS = [*role_default("redis", "redis_acl_users"), role_default("redis", "redis_replica_user"),
             role_default("redis", "redis_sentinel_user")]


def directives(host: Any, path: str) -> dict[str, list[list[str]]]:
    """`key value...` lines of a redis config file -> {key: [args, ...]} (quotes kept as written)."""
    out: dict[str, list[list[str]]] = {}
    for line in host.file(path).content_string.splitlines():
        words = line.strip().split()
        if words and not words[0].startswith("#"):
            out.setdefault(words[0].lower(), []).append(words[1:])
    return out


@pytest.fixture(scope="module")
def conf(host: Any) -> dict[str, list[list[str]]]:
    return directives(host, CONFIG)


@pytest.fixture(scope="module")
def acl_lines(host: Any) -> list[list[str]]:
    return [line.split() for line in host.file(ACLFILE).content_string.splitlines() if line.startswith("user ")]


@pytest.fixture(scope="module")
def redis_cli(host: Any, lab: Any, conf: dict[str, list[list[str]]]):
    """Run one redis-cli command, optionally as an ACL user whose password is read on the host."""
    port = int(conf.get("port", [["6379"]])[-1][0])
    tls_port = int(conf.get("tls-port", [["0"]])[-1][0])

    def _run(*argv: str, user: str | None = None) -> str:
        target = ["-h", "127.0.0.1", "-p", str(port)] if port else [
            # tls-auth-clients yes: a lab client certificate is required to even say PING.
            "--tls", "--cacert", f"{lab.paths.pki}/ca/ca-bundle.crt",
            "--cert", f"{lab.paths.pki}/certs/app-redis.chain.crt", "--key", f"{lab.paths.pki}/private/app-redis.key",
            "-h", "127.0.0.1", "-p", str(tls_port)]
        env = ""
        if user:
            secret = next(u["secret"] for u in ACL_USERS if u["name"] == user)
            env = f'REDISCLI_AUTH="$(cat {sh(f"{lab.paths.secrets}/{secret}")})" '
            target += ["--user", user]
        out = host.run(env + sh("redis-cli", "--no-auth-warning", *target, *argv))
        return (out.stdout + out.stderr).strip()

    return _run


def test_redis_01_no_default_user(acl_lines: list[list[str]], redis_cli: Any) -> None:
    """`user default off`: a client that does not authenticate gets nothing (Redis ACL guide)."""
    default = [w for w in acl_lines if w[1] == "default"]
    assert default, "the ACL file does not define the default user (Redis then enables it with nopass)"
    assert all("off" in w and "on" not in w and "nopass" not in w for w in default), default
    answer = redis_cli("PING")
    assert "NOAUTH" in answer or "WRONGPASS" in answer, f"unauthenticated PING answered {answer!r}"


def test_redis_02_acl_users(acl_lines: list[list[str]], redis_cli: Any) -> None:
    """One user per component (role defaults), SHA-256 password hashes only, no global key or command
    access; live: the app user can PING but cannot touch keys outside seclab:* nor run admin commands."""
    names = {w[1] for w in acl_lines}
    assert names == {"default"} | {u["name"] for u in ACL_USERS}, f"ACL users {sorted(names)}"
    for w in acl_lines:
        if w[1] == "default":
            continue
        rules = w[2:]
        assert any(re.fullmatch(r"#[0-9a-f]{64}", r) for r in rules), f"{w[1]}: no SHA-256 password hash"
        assert not any(r.startswith(">") for r in rules), f"{w[1]}: clear-text password in the ACL file"
        assert not {"nopass", "allkeys", "~*", "+@all", "allcommands", "allchannels", "&*"} & set(rules), f"{w[1]}: {rules}"
    assert redis_cli("PING", user="seclab_app") == "PONG"
    assert "NOPERM" in redis_cli("GET", "other:key", user="seclab_app"), "app user reads keys outside seclab:*"
    for cmd in (["CONFIG", "GET", "maxmemory"], ["ACL", "LIST"], ["KEYS", "*"]):
        assert "NOPERM" in redis_cli(*cmd, user="seclab_app"), f"app user may run {' '.join(cmd)}"


def test_redis_03_protected_mode(conf: dict[str, list[list[str]]], redis_cli: Any) -> None:
    """protected-mode yes: a second lock should the bind ever be widened (Redis security guide)."""
    assert conf.get("protected-mode", [["yes"]])[-1] == ["yes"]
    live = redis_cli("CONFIG", "GET", "protected-mode", user="seclab_exporter").split()
    assert live[-1:] == ["yes"], f"server reports protected-mode {live}"


def test_redis_04_loopback_bind(host: Any, conf: dict[str, list[list[str]]]) -> None:
    """bind loopback addresses only, and the server listens on nothing else."""
    binds = [a.lstrip("-") for args in conf.get("bind", []) for a in args]
    assert binds, "no bind directive: Redis would listen on every address"
    assert all(ipaddress.ip_address(a).is_loopback for a in binds), f"bind {binds}"
    listeners = [line.split()[3] for line in host.run("ss -Htlnp").stdout.splitlines() if '"redis-server"' in line]
    assert listeners, "redis-server listens nowhere"
    for addr in listeners:
        ip = addr.rsplit(":", 1)[0].strip("[]")
        assert ip not in ("*", "0.0.0.0", "::") and ipaddress.ip_address(ip).is_loopback, f"listens on {addr}"


@pytest.mark.parametrize("path", [CONFIG, ACLFILE])
def test_redis_05_files_not_world_readable(host: Any, path: str) -> None:
    """The config and the ACL file (password hashes) are root-owned and give others nothing."""
    f = host.file(path)
    assert f.exists, f"{path} missing"
    assert f.user == "root", f"{path} owned by {f.user}: the server could rewrite it (CONFIG REWRITE, ACL SAVE)"
    assert f.mode & 0o007 == 0, f"{path} mode {oct(f.mode)}"


def test_redis_06_tls_only(conf: dict[str, list[list[str]]]) -> None:
    """`port 0` and a tls-port with client certificates: no plaintext protocol at all (Redis TLS guide)."""
    assert conf.get("port", [["6379"]])[-1] == ["0"], f"plaintext port {conf.get('port')}"
    assert conf.get("tls-port"), "no tls-port"
    assert conf.get("tls-auth-clients", [["yes"]])[-1] == ["yes"], "client certificates not required"


def test_redis_07_dangerous_commands(conf: dict[str, list[list[str]]]) -> None:
    """Wiping, stopping or extending the server through the protocol is off, on top of the ACLs."""
    renamed = {a[0].upper() for a in conf.get("rename-command", []) if len(a) == 2 and a[1] in ('""', "''")}
    # The security guide's minimum, plus whatever the role lists.
    wanted = {"FLUSHALL", "FLUSHDB", "SHUTDOWN", "DEBUG"} | {c.upper() for c in role_default("redis", "redis_disabled_commands")}
    assert wanted <= renamed, f"not disabled: {sorted(wanted - renamed)}"
    for key in ("enable-debug-command", "enable-module-command", "enable-protected-configs"):
        assert conf.get(key, [["no"]])[-1] == ["no"], f"{key} {conf.get(key)}"
