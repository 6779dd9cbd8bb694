"""Static checks of playbooks/: syntax, rendered hardening lines, documented variables, the engine.

No host is changed: templates are rendered by Ansible itself into a temp dir (render.yml), with the
roles' defaults and the default lab definition.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import labdef
from seclab.engines import ansible_engine
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
ROLES = PLAYBOOKS / "roles"
HERE = Path(__file__).resolve().parent
# The walking skeleton's roles (other roles are checked by their own owners' tests).
SKELETON_ROLES = ["common", "secrets", "supervisor", "process", "postgresql", "redis", "app"]


def _ansible_playbook() -> str:
    try:
        return ansible_engine.ansible_playbook()
    except Exception:
        need(False, "ansible-playbook (the dev extra)")
        raise


def _env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


@pytest.mark.parametrize("playbook", ["site.yml", "down.yml"])
def test_syntax_check(playbook: str, labvars: Path) -> None:
    proc = subprocess.run(
        [_ansible_playbook(), "-i", str(PLAYBOOKS / "inventory" / "localhost.yml"), str(PLAYBOOKS / playbook),
         "--syntax-check", "-e", f"@{labvars}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_example_inventories_parse() -> None:
    for name in ("localhost.yml", "remote.example.yml"):
        inv = yaml.safe_load((PLAYBOOKS / "inventory" / name).read_text())
        assert inv["all"]["children"]["lab"]["hosts"], name


# ---------------------------------------------------------------- rendered templates


@pytest.fixture(scope="module")
def rendered(labvars: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    proc = subprocess.run(
        [_ansible_playbook(), "-i", "localhost,", str(HERE / "render.yml"), "-e", f"@{labvars}",
         "-e", f"out_dir={out}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def _lines(path: Path, comment: str = "#") -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith(comment)]


def test_pg_hba_has_no_trust_and_no_wide_network(rendered: Path) -> None:
    lines = _lines(rendered / "pg_hba.conf")
    assert lines, "pg_hba.conf is empty"
    text = " ".join(lines)
    assert "trust" not in text
    assert "0.0.0.0" not in text and "::/0" not in text and " all all " not in f" {text} "
    for ln in lines:
        fields = ln.split()
        if fields[0] == "local":
            assert fields[2] == "postgres" and fields[-1] == "peer", ln
        else:
            # TCP: TLS only, SCRAM plus a client certificate (tests/playbooks/test_transport_tls.py has the rest).
            assert fields[0] == "hostssl" and fields[3] == "127.0.0.1/32", ln
            assert fields[4] == "scram-sha-256" and fields[5].startswith("clientcert=verify-"), ln
    assert "hostssl seclab seclab_app 127.0.0.1/32 scram-sha-256 clientcert=verify-full" in [
        " ".join(ln.split()) for ln in lines
    ]


def test_postgresql_settings(rendered: Path) -> None:
    conf = {
        k.strip(): v.strip() for k, v in (ln.split("=", 1) for ln in _lines(rendered / "postgresql.conf"))
    }
    assert conf["listen_addresses"] == "'localhost'"
    assert conf["password_encryption"] == "'scram-sha-256'"
    assert conf["log_connections"] == "on" and conf["log_disconnections"] == "on"
    assert conf["port"] == "5432"


def test_redis_config_is_loopback_protected_and_acl_based(rendered: Path) -> None:
    lines = _lines(rendered / "redis.conf")
    binds = [ln for ln in lines if ln.startswith("bind ")]
    assert len(binds) == 1
    assert set(binds[0].split()[1:]) <= {"127.0.0.1", "-::1", "::1"}
    assert "protected-mode yes" in lines
    assert "daemonize no" in lines
    assert any(ln.startswith("aclfile ") for ln in lines)
    assert not any(ln.startswith("requirepass") for ln in lines)
    for cmd in ("FLUSHALL", "FLUSHDB", "DEBUG"):
        assert f'rename-command {cmd} ""' in lines


def test_redis_acl_has_no_default_user_and_no_clear_passwords(rendered: Path) -> None:
    lines = (rendered / "redis.acl").read_text().split("\n")
    users = [ln for ln in lines if ln.strip()]
    assert all(ln.startswith("user ") for ln in users), "Redis ACL files take no comments"
    default = [ln for ln in users if ln.split()[1] == "default"]
    assert len(default) == 1 and " off " in default[0] and "-@all" in default[0]
    others = [ln for ln in users if ln.split()[1] != "default"]
    assert {ln.split()[1] for ln in others} == {"seclab_app", "seclab_worker", "seclab_exporter", "seclab_tls_reload",
                                                "seclab_tenant_admin", "seclab_replica", "seclab_sentinel"}
    for ln in others:
        tokens = ln.split()
        assert not any(t.startswith(">") for t in tokens), "clear-text password in the ACL file"
        assert any(re.fullmatch(r"#[0-9a-f]{64}", t) for t in tokens), ln
        assert "-@all" in tokens and "+@all" not in tokens and "allkeys" not in tokens and "~*" not in tokens, ln
        assert "+@admin" not in tokens, ln
    # The TLS reloader may CONFIG SET (Redis ACLs cannot narrow it to tls-*) and nothing else.
    reload_user = next(ln.split() for ln in others if ln.split()[1] == "seclab_tls_reload")
    assert [t for t in reload_user if t.startswith(("+", "~", "&", "%"))] == ["+config|set"], reload_user
    # `lab tenant remove`: SCAN and DEL within seclab:* and the dead-letter stream, nothing else.
    tenant_admin = next(ln.split() for ln in others if ln.split()[1] == "seclab_tenant_admin")
    assert [t for t in tenant_admin if t.startswith(("+", "~", "&", "%"))] == [
        "~seclab:*", "+@connection", "+scan", "+del", "+unlink", "+xrange", "+xdel"], tenant_admin
    app = next(ln for ln in others if ln.split()[1] == "seclab_app").split()
    assert "~seclab:*" in app and "-@dangerous" in app


def test_supervisord_socket_is_root_only(rendered: Path) -> None:
    lines = _lines(rendered / "supervisord.conf", ";")
    assert "chmod=0700" in lines
    assert "[inet_http_server]" not in lines and "inet_http_server" not in " ".join(lines)
    assert any(ln.startswith("file=/") and ln.endswith(".sock") for ln in lines)


def test_process_program_and_unit(rendered: Path) -> None:
    prog = _lines(rendered / "program.conf", ";")
    assert "[program:sample]" in prog and "user=nobody" in prog
    assert "stdout_logfile=/var/log/seclab/sample.log" in prog
    assert any(ln.startswith("stdout_logfile_maxbytes=") for ln in prog)
    assert any(ln.startswith("stdout_logfile_backups=") for ln in prog)
    env = next(ln for ln in prog if ln.startswith("environment="))
    assert 'PCT="50%%"' in env  # supervisord expands %(...)s: a literal % must be doubled
    unit = _lines(rendered / "unit.service")
    assert "User=nobody" in unit and "NoNewPrivileges=yes" in unit


EXPECTED_APP_ENV = {
    "SECLAB_LAB_FILE": "/etc/seclab/lab.json",
    "SECLAB_DB_HOST": "127.0.0.1",
    "SECLAB_DB_PORT": "5432",
    "SECLAB_DB_NAME": "seclab",
    "SECLAB_DB_USER": "seclab_app",
    "SECLAB_DB_PASSWORD_FILE": "/etc/seclab/secrets/db_app_password",
    "SECLAB_DB_OWNER_USER": "seclab_owner",
    "SECLAB_DB_OWNER_PASSWORD_FILE": "/etc/seclab/secrets/db_owner_password",
    "SECLAB_DB_TENANT_KEY_FILE": "/etc/seclab/secrets/db_tenant_key",
    "SECLAB_DB_TENANT_POOL_MAX": "4",
    "SECLAB_DB_TENANT_POOLS_MAX": "64",
    "SECLAB_DB_TENANT_POOL_IDLE_S": "60",
    "SECLAB_DB_TENANT_CONNECTION_LIMIT": "20",
    "SECLAB_DB_SSLMODE": "verify-full",
    "SECLAB_DB_SSLROOTCERT": "/etc/seclab/pki/ca/ca-bundle.crt",
    "SECLAB_DB_SSLCERT": "/etc/seclab/pki/certs/seclab_app.chain.crt",
    "SECLAB_DB_SSLKEY": "/etc/seclab/pki/private/seclab_app.key",
    "SECLAB_REDIS_URL": "rediss://127.0.0.1:6379/0",
    "SECLAB_REDIS_CA_FILE": "/etc/seclab/pki/ca/ca-bundle.crt",
    "SECLAB_REDIS_CERT_FILE": "/etc/seclab/pki/certs/app-redis.chain.crt",
    "SECLAB_REDIS_KEY_FILE": "/etc/seclab/pki/private/app-redis.key",
    "SECLAB_REDIS_USER": "seclab_app",
    "SECLAB_REDIS_PASSWORD_FILE": "/etc/seclab/secrets/redis_app_password",
    "SECLAB_REDIS_SENTINELS": "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381",
    "SECLAB_REDIS_MASTER_NAME": "seclab",
    "SECLAB_OIDC_ISSUER": "https://localhost/realms/seclab",
    "SECLAB_OIDC_AUDIENCE": "seclab-api",
    "SECLAB_OIDC_JWKS_URL": "https://127.0.0.1:8180/realms/seclab/protocol/openid-connect/certs",
    "SECLAB_OIDC_CA_FILE": "/etc/seclab/pki/ca/ca-bundle.crt",
    "SECLAB_TRUSTED_PROXIES": "127.0.0.1",
    "SECLAB_PII_KEY_FILE": "/etc/seclab/secrets/pii_key",
    "SECLAB_LOG_LEVEL": "INFO",
    # The lab-admin events view: the log search gateway, with the search-only `log-search` certificate.
    "SECLAB_LOGSEARCH_URL": "https://127.0.0.1:9200",
    "SECLAB_LOGSEARCH_CA_FILE": "/etc/seclab/pki/ca/ca-bundle.crt",
    "SECLAB_LOGSEARCH_CERT_FILE": "/etc/seclab/pki/certs/log-search.chain.crt",
    "SECLAB_LOGSEARCH_KEY_FILE": "/etc/seclab/pki/private/log-search.key",
}


def test_app_env_contract(rendered: Path) -> None:
    env = dict(ln.split("=", 1) for ln in _lines(rendered / "app.env"))
    assert env == EXPECTED_APP_ENV


def test_lab_json_is_as_vars(rendered: Path, labvars: Path) -> None:
    assert json.loads((rendered / "lab.json").read_text()) == json.loads(labvars.read_text())


# ---------------------------------------------------------------- documented variables

MAGIC = {
    "lab", "item", "omit", "inventory_hostname", "playbook_dir", "role_path", "hostvars", "groups",
    "group_names", "ansible_managed", "true", "false", "none", "True", "False", "None", "lookup", "query",
    "q", "dict", "range", "loop", "namespace", "undef",
    "_",  # the throwaway name of `{% set _ = items.update(...) %}` in a set_fact template
}
CONDITION_KEYS = {"when", "until", "changed_when", "failed_when", "that"}


class _AnyName(dict):  # type: ignore[type-arg]
    """Every filter and test name exists: only variable names matter here, not Ansible's plugins."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> Any:
        return lambda *a, **k: None

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key]


def _jinja_env() -> Any:
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    env.filters = _AnyName(env.filters)
    env.tests = _AnyName(env.tests)
    return env


def _undeclared(text: str) -> set[str]:
    from jinja2 import meta

    return set(meta.find_undeclared_variables(_jinja_env().parse(text)))


def _walk(node: Any, key: str | None, found: set[str], declared: set[str]) -> None:
    if isinstance(node, dict):
        for k in ("register",):
            if isinstance(node.get(k), str):
                declared.add(node[k])
        if isinstance(node.get("vars"), dict):
            declared.update(node["vars"])
        sf = node.get("ansible.builtin.set_fact") or node.get("set_fact")
        if isinstance(sf, dict):
            declared.update(sf)
        lc = node.get("loop_control")
        if isinstance(lc, dict):
            declared.update(lc[k] for k in ("loop_var", "index_var") if isinstance(lc.get(k), str))
        for k, v in node.items():
            _walk(v, k, found, declared)
    elif isinstance(node, list):
        for v in node:
            _walk(v, key, found, declared)
    elif isinstance(node, str):
        if key in CONDITION_KEYS and "{{" not in node:
            found |= _undeclared("{{ " + node + " }}")
        elif "{{" in node or "{%" in node:
            found |= _undeclared(node)
    elif isinstance(node, bool) or node is None:
        return


def _defaults_with_comments(role: Path) -> tuple[set[str], set[str]]:
    """Top-level keys of defaults/main.yml, and those with a comment line right above them."""
    path = role / "defaults" / "main.yml"
    if not path.is_file():
        return set(), set()
    data = yaml.safe_load(path.read_text()) or {}
    lines = path.read_text().splitlines()
    commented = set()
    for i, ln in enumerate(lines):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", ln)
        if m and i > 0 and lines[i - 1].lstrip().startswith("#"):
            commented.add(m.group(1))
    return set(data), commented


def _template_dirs(role: Path) -> list[Path]:
    """The role's own templates/ and the shared folder its `<role>_templates_dir` names (datastores/...)."""
    dirs = [role / "templates"]
    path = role / "defaults" / "main.yml"
    shared = (yaml.safe_load(path.read_text()) or {}).get(f"{role.name}_templates_dir") if path.is_file() else None
    if isinstance(shared, str):
        dirs.append(Path(shared.replace("{{ role_path }}", str(role))).resolve())
    return [d for d in dirs if d.is_dir()]


def _role_variables(role: Path) -> tuple[set[str], set[str]]:
    found: set[str] = set()
    declared: set[str] = set()
    for sub in ("tasks", "handlers"):
        for f in sorted((role / sub).glob("*.yml")) if (role / sub).is_dir() else []:
            _walk(yaml.safe_load(f.read_text()), None, found, declared)
    for tdir in _template_dirs(role):
        for f in sorted(tdir.rglob("*.j2")):
            found |= _undeclared(f.read_text())
    defaults, _ = _defaults_with_comments(role)
    for v in yaml.safe_load((role / "defaults" / "main.yml").read_text()).values() if defaults else []:
        _walk(v, None, found, declared)
    return found, declared


@pytest.mark.parametrize("role", [*SKELETON_ROLES, "os_hardening"])
def test_every_variable_is_documented_in_defaults(role: str) -> None:
    path = ROLES / role
    found, declared = _role_variables(path)
    defaults, commented = _defaults_with_comments(path)
    used = {v for v in found if v not in MAGIC and not v.startswith("ansible_") and v not in declared}
    missing = sorted(used - defaults)
    assert not missing, f"{role}: variables used but not in defaults/main.yml: {missing}"
    undocumented = sorted(defaults - commented)
    assert not undocumented, f"{role}: defaults without a comment line above them: {undocumented}"


def test_consumers_name_secrets_the_secrets_role_generates() -> None:
    secrets = yaml.safe_load((ROLES / "secrets" / "defaults" / "main.yml").read_text())
    names = {f["name"] for f in secrets["secrets_files"]}
    redis = yaml.safe_load((ROLES / "redis" / "defaults" / "main.yml").read_text())
    assert {u["secret"] for u in redis["redis_acl_users"]} <= names
    app = yaml.safe_load((ROLES / "app" / "defaults" / "main.yml").read_text())
    assert {Path(p.split("}}")[-1]).name for p in app["app_secret_files"].values()} <= names


def test_no_secret_value_passes_without_no_log() -> None:
    """Tasks that read a secret file (slurp) or pass passwords in environment are no_log."""
    for role in SKELETON_ROLES:
        for f in (ROLES / role / "tasks").glob("*.yml"):
            for task in yaml.safe_load(f.read_text()) or []:
                for t in [task, *task.get("block", [])]:
                    env = t.get("environment") or {}
                    reads = "ansible.builtin.slurp" in t or any("PASSWORD" in k or "AUTH" in k for k in env)
                    if reads:
                        assert t.get("no_log") is True, f"{role}/{f.name}: {t.get('name')}"


# ---------------------------------------------------------------- the engine


def test_parser_reports_tasks_failures_and_recap() -> None:
    events: list[str] = []
    p = ansible_engine._Parser(events.append, verbose=False)
    lines = [
        {"_event": "v2_playbook_on_play_start", "play": {"name": "x"}},
        {"_event": "v2_playbook_on_task_start", "task": {"name": "common : Install"}},
        {"_event": "v2_runner_on_failed", "task": {"name": "app : Bootstrap"},
         "hosts": {"h1": {"msg": "non-zero return code", "rc": 2,
                          "stdout": '{"changed": false, "failed": true, "msg": "role missing"}'}}},
        {"_event": "v2_playbook_on_stats", "stats": {"h1": {"ok": 3, "changed": 1, "failures": 1,
                                                            "unreachable": 0, "skipped": 0}}},
    ]
    for ev in lines:
        p.feed(json.dumps(ev) + "\n")
    p.feed("[WARNING]: not json\n")
    assert events == ["common : Install"]
    assert p.failure == "failed: task 'app : Bootstrap' on h1: role missing"
    assert p.stats["h1"].failed == 1 and p.stats["h1"].changed == 1


FAKE_PLAYBOOK = r'''#!{python}
import json, os, stat, sys
args = sys.argv[1:]
vars_file = args[args.index("-e") + 1][1:]
mode = stat.S_IMODE(os.stat(vars_file).st_mode)
data = json.load(open(vars_file))
extra = [json.load(open(a[1:])) for i, a in enumerate(args) if i and args[i - 1] == "-e" and a[1:] != vars_file]
print(json.dumps({{"_event": "v2_playbook_on_task_start", "task": {{"name": "probe"}}}}))
print(json.dumps({{"_event": "v2_runner_on_ok", "task": {{"name": "probe"}},
                  "hosts": {{"localhost": {{"mode": mode, "has_lab": "lab" in data, "extra": extra,
                                           "cfg": os.environ.get("ANSIBLE_CONFIG"),
                                           "seclab_env": sorted(k for k in os.environ if k.startswith("SECLAB_"))}}}}}}))
print(json.dumps({{"_event": "v2_playbook_on_stats", "stats": {{"localhost": {{"ok": 1, "changed": 0, "failures": 0}}}}}}))
'''


def test_run_playbook_writes_private_vars_and_parses_the_recap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "ansible-playbook"
    fake.write_text(FAKE_PLAYBOOK.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setattr(ansible_engine, "ansible_playbook", lambda: str(fake))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("SECLAB_LAB_FILE", str(tmp_path / "some-lab.yml"))  # `lab -f FILE` sets it
    events: list[str] = []
    result = ansible_engine.down(labdef.load(labdef.DEFAULT_PATH), purge=True, on_event=events.append)
    assert result.ok, result.error
    assert events == ["probe"]
    assert result.hosts["localhost"].ok == 1 and result.changed == 0
    assert "down: done" in result.summary()
    log = Path(result.log_path or "")
    seen = next(json.loads(ln) for ln in log.read_text().splitlines() if "v2_runner_on_ok" in ln)
    probe = seen["hosts"]["localhost"]
    assert probe["mode"] == 0o600 and probe["has_lab"] is True
    assert probe["extra"] == [{"purge": True}]
    assert probe["cfg"].endswith("playbooks/ansible.cfg")
    # The controller's SECLAB_* settings never reach the tasks (they would override the host's lab.json).
    assert probe["seclab_env"] == []
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_failed_run_has_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "ansible-playbook"
    fake.write_text("#!/bin/sh\necho 'ERROR! the playbook could not be found' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(ansible_engine, "ansible_playbook", lambda: str(fake))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = ansible_engine.up(labdef.load(labdef.DEFAULT_PATH))
    assert not result.ok
    assert result.error and "could not be found" in result.error and "\n" not in result.error


def test_pack_source_is_reproducible(tmp_path: Path) -> None:
    script = ROLES / "runtime" / "files" / "pack_source.py"
    outs = []
    for n in (1, 2):
        out = tmp_path / f"src{n}.tar.gz"
        subprocess.run([sys.executable, str(script), str(ROOT), str(out), "pyproject.toml", "seclab"], check=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    import tarfile

    with tarfile.open(tmp_path / "src1.tar.gz") as tar:
        names = tar.getnames()
    assert "pyproject.toml" in names and not any("__pycache__" in n for n in names)
