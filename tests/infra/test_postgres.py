"""DevSec postgres-baseline (postgres-02 .. postgres-20) on the lab's PostgreSQL.

Why through SQL and `SHOW`: the files the server actually loaded (`SHOW config_file`, `hba_file`,
`data_directory`) and the values in effect (conf.d overrides included) are what matter, not what a
default path would suggest. Queries run as the postgres superuser over the unix socket (peer), which is
also how the baseline's `postgres_session` works. Each test quotes the DevSec expectation; deviations
are replacement checks with an entry in waivers.yml.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import own_processes, role_default
from tests.infra.nginx_checks import MOZILLA_INTERMEDIATE_TLS12

DATABASES = ("postgres", role_default("postgresql", "postgresql_db_name"))
SUPERUSER = role_default("postgresql", "postgresql_user")


def show(psql: Any, name: str) -> str:
    return psql(f"SHOW {name}")[0]


def hba_lines(host: Any, psql: Any) -> list[list[str]]:
    """pg_hba.conf records as word lists (comments and blank lines dropped)."""
    text = host.file(show(psql, "hba_file")).content_string
    return [line.split("#", 1)[0].split() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def test_postgres_02_supported_version(host: Any, psql: Any, devsec_input: Any) -> None:
    """DevSec: psql -V is a supported release, never RC/DEVEL/BETA (input: supported majors)."""
    out = host.run("psql -V").stdout.strip()
    server = show(psql, "server_version")
    assert not re.search(r"RC|DEVEL|BETA", out + server), f"pre-release: {out} / {server}"
    majors = devsec_input("postgres-02", "supported major versions").split("|")
    major = server.split(".")[0]
    assert major in majors, f"server {server} is not a supported major ({'/'.join(majors)})"
    assert re.match(rf"^psql \(PostgreSQL\) {major}\.", out), f"client {out!r} differs from server {server}"


def test_postgres_03_one_instance(host: Any) -> None:
    """DevSec: exactly one `bin/postgres` postmaster on the host."""
    pm = [a for a in own_processes(host).splitlines() if re.match(r"^\S*/bin/postgres(\s|$)", a)]
    assert len(pm) == 1, f"{len(pm)} postmasters: {pm}"


@pytest.mark.parametrize("db", DATABASES)
def test_postgres_04_untrusted_languages(psql: Any, db: str) -> None:
    """DevSec: no untrusted language besides c and internal (plperlu and friends reach the OS)."""
    assert psql("SELECT lanname FROM pg_language WHERE NOT lanpltrusted AND lanname NOT IN ('internal','c')", db) == []


@pytest.mark.parametrize("db", DATABASES)
def test_postgres_05_languages(psql: Any, db: str) -> None:
    """DevSec: only internal, c, sql and plpgsql are installed."""
    assert psql("SELECT lanname FROM pg_language WHERE lanname NOT IN ('internal','c','sql','plpgsql')", db) == []


def test_postgres_06_passwords(host: Any, psql: Any, waived: Any) -> None:
    """DevSec: no login role without a password. Waived for the superuser, who may then only use peer."""
    waived("postgres-06", "passwd IS NULL")
    nopass = psql(f"SELECT rolname FROM pg_authid WHERE rolcanlogin AND rolpassword IS NULL AND rolname <> '{SUPERUSER}'")
    assert nopass == [], f"login roles without a password: {nopass}"
    for rec in hba_lines(host, psql):
        users = rec[2].split(",") if len(rec) > 2 else []
        if SUPERUSER in users or "all" in users:
            method = rec[3] if rec[0] == "local" else (rec[4] if len(rec) > 4 else "")
            assert rec[0] == "local" and method == "peer", f"{SUPERUSER} (no password) is admitted by {' '.join(rec)}"


def test_postgres_07_scram(psql: Any) -> None:
    """DevSec: passwords stored as salted hashes: scram-sha-256 for PostgreSQL >= 10."""
    assert show(psql, "password_encryption") == "scram-sha-256"
    weak = psql("SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'")
    assert weak == [], f"roles with non-SCRAM password hashes: {weak}"


def test_postgres_08_privileged_roles(psql: Any, waived: Any) -> None:
    """DevSec: exactly one role (the DBA) has SUPERUSER, CREATEROLE or CREATEDB. The lab's schema owner
    also has CREATEROLE (waived: it creates the per-tenant roles); nothing else, and never more."""
    supers = psql("SELECT rolname FROM pg_roles WHERE rolsuper OR rolcreatedb")
    assert supers == [SUPERUSER], f"roles with SUPERUSER/CREATEDB: {supers}"
    creators = sorted(psql("SELECT rolname FROM pg_roles WHERE rolcreaterole AND NOT rolsuper"))
    if creators:
        waived("postgres-08", "CREATEROLE only for the DBA")
    assert creators in ([], ["seclab_owner"]), f"roles with CREATEROLE: {creators}"


def test_postgres_09_pg_authid(psql: Any) -> None:
    """DevSec: only the DBA has privileges on pg_catalog.pg_authid (it holds the password hashes)."""
    grantees = psql("SELECT grantee FROM information_schema.role_table_grants WHERE table_name='pg_authid' GROUP BY grantee")
    assert grantees == [SUPERUSER], grantees


def test_postgres_10_config_permissions(host: Any, psql: Any) -> None:
    """DevSec: config dir owned by postgres, 0700; postgresql.conf and pg_hba.conf owned by postgres,
    readable by owner (and group), no write for group, nothing for others, no execute."""
    conf = show(psql, "config_file")
    hba = show(psql, "hba_file")
    problems = []
    d = host.file(conf.rsplit("/", 1)[0])
    if d.user != SUPERUSER or d.mode & 0o077:
        problems.append(f"{d.path}: {d.user} {oct(d.mode)} (want {SUPERUSER} 0700)")
    for path in (conf, hba):
        f = host.file(path)
        if f.user != SUPERUSER or f.mode & 0o137:
            problems.append(f"{path}: {f.user} {oct(f.mode)} (want {SUPERUSER} 0640 or stricter)")
    assert not problems, "; ".join(problems)


def test_postgres_11_ssl(psql: Any, lab: Any) -> None:
    """DevSec: ssl = on, with our own certificate (never Debian's snakeoil)."""
    assert show(psql, "ssl") == "on", "ssl is off"
    cert = show(psql, "ssl_cert_file")
    assert cert.startswith(lab.paths.pki), f"ssl_cert_file {cert} is not a lab certificate"


def test_postgres_12_ssl_ciphers(psql: Any, waived: Any) -> None:
    """DevSec: ssl_ciphers 'ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH'. Waived for Mozilla intermediate."""
    waived("postgres-12", "ALL:!ADH")
    assert show(psql, "ssl_min_protocol_version") in ("TLSv1.2", "TLSv1.3")
    extra = [c for c in show(psql, "ssl_ciphers").split(":") if c not in MOZILLA_INTERMEDIATE_TLS12]
    assert not extra, f"ssl_ciphers outside Mozilla intermediate: {extra}"


def test_postgres_13_local_peer(host: Any, psql: Any) -> None:
    """DevSec: every `local` record uses peer."""
    bad = [" ".join(r) for r in hba_lines(host, psql) if r[0] == "local" and r[3:4] != ["peer"]]
    assert not bad, bad


def test_postgres_14_network_auth(host: Any, psql: Any) -> None:
    """DevSec: hostssl records use scram-sha-256 (>= 10). Also no trust/password/md5/ident anywhere."""
    recs = hba_lines(host, psql)
    bad = [" ".join(r) for r in recs if r[0] == "hostssl" and r[4:5] not in (["scram-sha-256"], ["cert"])]
    weak = [" ".join(r) for r in recs if any(m in r for m in ("trust", "password", "md5", "ident", "crypt"))]
    assert not bad and not weak, f"hostssl not scram: {bad}; weak methods: {weak}"


def test_postgres_15_ssl_only(host: Any, psql: Any) -> None:
    """DevSec: no `host` and no `hostnossl` records: every network connection is TLS."""
    bad = [" ".join(r) for r in hba_lines(host, psql) if r[0] in ("host", "hostnossl")]
    assert not bad, f"non-TLS records: {bad}"


@pytest.mark.parametrize("setting", ["log_connections", "log_disconnections", "log_duration", "log_hostname"])
def test_postgres_16_logging(psql: Any, setting: str) -> None:
    """DevSec: log_connections, log_disconnections, log_duration and log_hostname are on."""
    assert show(psql, setting) == "on", f"{setting} is off"


def test_postgres_16_logging_destination(host: Any, psql: Any, lab: Any, waived: Any) -> None:
    """DevSec: logging_collector on, log_directory set. Waived: stderr captured by the process manager."""
    waived("postgres-16", "logging_collector on")
    assert "stderr" in show(psql, "log_destination")
    log = host.file(f"{lab.paths.logs}/postgresql.log")
    assert log.exists, f"{log.path} missing: nothing captures the server log"
    assert log.mode & 0o007 == 0, f"{log.path} mode {oct(log.mode)} readable by others"


def test_postgres_16_log_line_prefix(psql: Any, waived: Any) -> None:
    """DevSec: log_line_prefix '%t %u %d %h'. Waived: any prefix with a timestamp, %u, %d and %h."""
    waived("postgres-16", "log_line_prefix")
    prefix = show(psql, "log_line_prefix")
    missing = [p for p in ("%u", "%d", "%h") if p not in prefix] + ([] if re.search("%[tm]", prefix) else ["%t/%m"])
    assert not missing, f"log_line_prefix {prefix!r} lacks {missing}"


@pytest.mark.parametrize("db", DATABASES)
def test_postgres_17_no_public_grants(psql: Any, db: str) -> None:
    """DevSec: no table privileges for PUBLIC outside pg_catalog and information_schema (tenant separation)."""
    rows = psql("SELECT table_schema||'.'||table_name||':'||privilege_type FROM information_schema.table_privileges "
                "WHERE grantee='PUBLIC' AND table_schema NOT IN ('pg_catalog','information_schema')", db)
    assert rows == [], rows


@pytest.mark.parametrize("db", DATABASES)
def test_postgres_18_no_grant_option(psql: Any, db: str) -> None:
    """DevSec: no grants WITH GRANT OPTION except to postgres. An owner's implicit grant option on its
    own tables is not a grant (it cannot be revoked) and is left out."""
    rows = psql("SELECT p.grantee||' '||p.table_schema||'.'||p.table_name||':'||p.privilege_type "
                "FROM information_schema.table_privileges p JOIN pg_class c ON c.relname=p.table_name "
                "JOIN pg_namespace n ON n.oid=c.relnamespace AND n.nspname=p.table_schema "
                f"WHERE p.is_grantable='YES' AND p.grantee <> '{SUPERUSER}' AND p.grantee <> pg_get_userbyid(c.relowner)", db)
    assert rows == [], rows


@pytest.mark.parametrize("db", DATABASES)
def test_postgres_19_no_security_definer(psql: Any, db: str) -> None:
    """DevSec: no SECURITY DEFINER functions (they run with their owner's rights)."""
    rows = psql("SELECT n.nspname||'.'||p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid=p.pronamespace WHERE p.prosecdef", db)
    assert rows == [], rows


def test_postgres_20_data_and_log_dirs(host: Any, psql: Any, devsec_input: Any) -> None:
    """DevSec: data directory owned by postgres, 0700; log directory only for the database account.
    Input postgres_log_dir = lab.paths.logs: there, nothing is readable or writable by others."""
    data = host.file(show(psql, "data_directory"))
    assert data.is_directory and data.user == SUPERUSER, f"{data.path}: {data.user}"
    assert data.mode & 0o077 == 0, f"{data.path} mode {oct(data.mode)}"
    logdir = host.file(devsec_input("postgres-20", "postgres_log_dir"))
    assert logdir.is_directory and logdir.mode & 0o007 == 0, f"{logdir.path} mode {oct(logdir.mode)}"
