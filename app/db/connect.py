"""PostgreSQL connection parameters from the settings (TLS per `SECLAB_DB_SSLMODE`)."""

from __future__ import annotations

import ssl
from typing import Any

import asyncpg

from app.core.config import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | str:
    """libpq sslmode semantics; verify-full is what the edge issue turns on (ASVS 4.0.3 V9.2.2)."""
    mode = settings.db_sslmode
    if mode == "disable":
        return "disable"
    ctx = ssl.create_default_context(cafile=settings.db_sslrootcert) if settings.db_sslrootcert else (
        ssl.create_default_context()
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode == "require":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        ctx.check_hostname = False
    if settings.db_sslcert and settings.db_sslkey:
        ctx.load_cert_chain(settings.db_sslcert, settings.db_sslkey)
    return ctx


def app_credentials(settings: Settings) -> dict[str, Any]:
    pw = settings.db_password()
    return {
        "host": settings.db_host,
        "port": settings.db_port,
        "user": settings.db_user,
        "password": pw.get_secret_value() if pw else None,
        "database": settings.db_name,
        "ssl": ssl_context(settings),
    }


async def connect_owner(settings: Settings) -> asyncpg.Connection:
    """A short-lived connection as the schema owner: only admin commands and lab-admin routes use it."""
    pw = settings.db_owner_password()
    return await asyncpg.connect(
        host=settings.db_host,
        port=settings.db_port,
        user=settings.db_owner_user,
        password=pw.get_secret_value() if pw else None,
        database=settings.db_name,
        ssl=ssl_context(settings),
        timeout=10,
        server_settings={"application_name": "seclab-admin"},
    )
