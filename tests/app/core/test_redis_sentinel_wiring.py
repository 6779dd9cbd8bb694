"""How the app, the worker and Celery find the Redis primary through Sentinel (issue 14 part 4).

Pure wiring, no server: the settings parse the sentinel list strictly, the client factory builds
Sentinel-managed pools with TLS to the sentinels AND to the data node, and Celery's broker becomes
kombu's `sentinel://` transport with the same credentials. The live failover is
tests/app/test_redis_failover.py.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from pydantic import ValidationError

from app.core.config import Settings, parse_host_ports
from app.core.redis import async_client, database, sync_client
from app.worker.celery_app import broker_url, make_celery, sentinel_transport_options

SENTINELS = "127.0.0.1:26379,127.0.0.1:26380, [::1]:26381"


def _settings(tmp_path: Path, **kw: object) -> Settings:
    pw = tmp_path / "pw"
    pw.write_text("p@ss/word\n")
    base: dict[str, object] = {
        "redis_url": "rediss://127.0.0.1:6379/3", "redis_user": "seclab_app", "redis_password_file": str(pw),
        "redis_ca_file": "/ca.crt", "redis_cert_file": "/c.crt", "redis_key_file": "/c.key",
        "redis_sentinels": SENTINELS, "redis_master_name": "seclab",
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def test_sentinel_list_is_parsed_and_a_bad_entry_rejected() -> None:
    assert parse_host_ports(SENTINELS) == [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("::1", 26381)]
    assert parse_host_ports("") == []
    for bad in ("127.0.0.1", "127.0.0.1:0", "h:99999", ":26379", "h:port"):
        with pytest.raises(ValueError):
            parse_host_ports(bad)
    with pytest.raises(ValidationError):
        Settings(redis_sentinels="127.0.0.1:26379,nope")


def test_async_client_asks_the_sentinels_over_tls_as_its_own_user(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    client = async_client(s, timeout=1.0, connect_timeout=0.5)
    pool = client.connection_pool
    assert isinstance(pool, aiosentinel.SentinelConnectionPool)
    assert pool.service_name == "seclab" and pool.is_master
    assert pool.connection_class is aiosentinel.SentinelManagedSSLConnection
    kw = pool.connection_kwargs
    assert kw["db"] == 3 and kw["username"] == "seclab_app" and kw["password"] == "p@ss/word"
    assert kw["ssl_cert_reqs"] == ssl.CERT_REQUIRED and kw["ssl_ca_certs"] == "/ca.crt"
    assert kw["ssl_certfile"] == "/c.crt" and kw["ssl_keyfile"] == "/c.key"
    sentinels = pool.sentinel_manager.sentinels
    assert len(sentinels) == 3
    skw = sentinels[0].connection_pool.connection_kwargs
    assert skw["username"] == "seclab_app" and skw["password"] == "p@ss/word"
    assert sentinels[0].connection_pool.connection_class.__name__ == "SSLConnection"
    assert skw["ssl_ca_certs"] == "/ca.crt" and skw["ssl_certfile"] == "/c.crt"
    asyncio.run(client.aclose())


def test_sync_client_too(tmp_path: Path) -> None:
    client = sync_client(_settings(tmp_path), timeout=0.5, connect_timeout=0.5)
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.connection_class is redis.sentinel.SentinelManagedSSLConnection
    assert len(pool.sentinel_manager.sentinels) == 3
    client.close()


def test_without_sentinels_the_url_is_used_directly(tmp_path: Path) -> None:
    s = _settings(tmp_path, redis_sentinels="")
    client = sync_client(s, timeout=0.5, connect_timeout=0.5)
    assert not isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["port"] == 6379
    assert broker_url(s) == "rediss://seclab_app:p%40ss%2Fword@127.0.0.1:6379/3"
    assert sentinel_transport_options(s) == {}
    client.close()


def test_celery_uses_kombus_sentinel_transport_with_tls(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert database(s) == 3
    assert broker_url(s) == ";".join(
        f"sentinel://seclab_app:p%40ss%2Fword@{h}:{p}/3" for h, p in (("127.0.0.1", 26379), ("127.0.0.1", 26380), ("::1", 26381))
    )
    app = make_celery(s, set_as_current=False)
    opts = app.conf.broker_transport_options
    assert opts["master_name"] == "seclab" and opts["global_keyprefix"] == "seclab:"
    skw = opts["sentinel_kwargs"]
    assert skw["ssl"] is True and skw["username"] == "seclab_app" and skw["ssl_certfile"] == "/c.crt"
    # broker_use_ssl turns kombu's SentinelChannel to SentinelManagedSSLConnection for the data node.
    assert app.conf.broker_use_ssl["ssl_ca_certs"] == "/ca.crt"
    with app.connection_for_write() as conn:
        channel_cls = conn.transport.Channel
        assert channel_cls.__name__ == "SentinelChannel"
        assert issubclass(channel_cls.connection_class_ssl, redis.sentinel.SentinelManagedConnection)
        assert issubclass(channel_cls.connection_class_ssl, redis.connection.SSLConnection)
