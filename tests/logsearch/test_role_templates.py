"""The logsearch role's templates rendered from its documented defaults: what the shipper and gateway get."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.nativetypes import NativeEnvironment

import labdef

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "logsearch"


def role_vars() -> dict[str, Any]:
    """Every logsearch_* default evaluated against the repository's lab.yml (as Ansible would)."""
    values: dict[str, Any] = {"lab": labdef.as_vars(labdef.load())["lab"], "ansible_managed": "test",
                              "ansible_facts": {"architecture": "x86_64"}}
    native = NativeEnvironment()

    def ev(v: Any) -> Any:
        if isinstance(v, str) and "{{" in v:
            return native.from_string(v).render(**values)
        if isinstance(v, list):
            return [ev(x) for x in v]
        if isinstance(v, dict):
            return {k: ev(x) for k, x in v.items()}
        return v

    for key, raw in yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()).items():
        values[key] = ev(raw)
    return values


def render(name: str, values: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined)
    return env.get_template(name).render(**values)


def test_every_default_is_documented_in_the_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs)
    assert all(spec["description"].strip() for spec in specs.values())


def test_shipper_reads_every_source_into_one_disk_assisted_queue() -> None:
    values = role_vars()
    conf = render("rsyslog.conf.j2", values)
    files = re.findall(r'input\(type="imfile" file="([^"]+)"', conf)
    assert files == [s["path"] for s in values["logsearch_sources"]]
    assert conf.count('type="omelasticsearch"') == 1
    for setting in ('queue.type="LinkedList"', 'queue.filename="seclab_engine"', 'queue.saveOnShutdown="on"',
                    'action.resumeRetryCount="-1"', f'queue.maxDiskSpace="{values["logsearch_queue_max_disk"]}"',
                    'tls.myprivkey="/etc/seclab/pki/private/log-shipper.key"', 'usehttps="on"'):
        assert setting in conf, setting
    # The shipper never talks to the engine's own (unauthenticated) port, only to the gateway.
    assert f'serverport="{values["logsearch_gateway_port"]}"' in conf
    assert str(values["logsearch_engine_port"]) not in conf


def test_gateway_demands_lab_client_certificates_and_admits_two_names() -> None:
    values = role_vars()
    conf = render("gateway.conf.j2", values)
    assert "ssl_verify_client on;" in conf and "ssl_crl " in conf
    assert f"listen 127.0.0.1:{values['logsearch_gateway_port']} ssl;" in conf
    assert re.findall(r'"~\(\^\|,\)CN=([a-z-]+)\(,\|\$\)" full;', conf) == ["log-shipper", "log-reader"]
    assert f"server 127.0.0.1:{values['logsearch_engine_port']};" in conf


def test_gateway_admits_the_apps_certificate_to_search_the_lab_indices_only() -> None:
    """The API's `log-search` CN reaches `/<prefix>-*/_search` (GET/POST) and nothing else."""
    values = role_vars()
    conf = render("gateway.conf.j2", values)
    assert re.findall(r'"~\(\^\|,\)CN=([a-z-]+)\(,\|\$\)" search;', conf) == ["log-search"]
    root = re.search(r"location / \{(.*?)\n        \}", conf, re.DOTALL)
    assert root and "if ($seclab_client_access != full)" in root.group(1)
    search = re.search(r'location ~ "(.*?)" \{(.*?)\n        \}\n', conf, re.DOTALL)
    assert search and "if ($seclab_client_access = none)" in search.group(2)
    assert re.search(r"limit_except GET POST \{\s*deny all;", search.group(2))
    pattern = re.compile(search.group(1))
    prefix = values["logsearch_index_prefix"]
    for path in (f"/{prefix}-*/_search", f"/{prefix}-nginx.access-2026.12.03/_search"):
        assert pattern.match(path), path
    for path in (f"/{prefix}-*/_doc/1", f"/{prefix}-x,other/_search", "/_all/_search", f"/{prefix}-*/_delete_by_query",
                 "/_cluster/settings", f"/{prefix}-*/_search/../_doc"):
        assert not pattern.match(path), path


def test_engine_binds_loopback_with_the_lab_heap() -> None:
    values = role_vars()
    settings = yaml.safe_load(render("opensearch.yml.j2", values))
    assert settings["network.host"] == "127.0.0.1" and settings["discovery.type"] == "single-node"
    assert settings["http.port"] == values["logsearch_engine_port"]
    jvm = render("jvm.options.j2", values).splitlines()
    assert f"-Xms{values['logsearch_heap']}" in jvm and f"-Xmx{values['logsearch_heap']}" in jvm
