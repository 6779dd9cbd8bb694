"""The Pulumi engine's logging is the native one: the logsearch role's engine, templates, shipping,
index template, pipelines and retention, compared with what the role renders (issue 17 item 6)."""

from __future__ import annotations

import difflib
import re
from typing import Any

from iac import render
from iac.config import IAC_DIR, IMAGES, MEMORY_MB
from iac.context import PASSWORDS
from labdef import roles
from tests.logsearch.test_role_templates import ROLE, role_vars

from .conftest import Run

GONE = ("elastic", "kibana", "filebeat")


def native_render(name: str, values: dict[str, Any]) -> str:
    """What Ansible's `template` task writes natively: the role's variables evaluated independently of
    iac/render.py (tests/logsearch), rendered with the template module's settings (labdef.roles)."""
    return roles.template_environment(ROLE / "templates").get_template(name).render(**values)


def _files(run: Run) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in run.of_type("pulumi-python:dynamic:Resource")}


def _mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["target"]: m["source"] for m in c.get("mounts", []) if m["type"] == "bind"}


def _body(text: str) -> list[str]:
    """Without the `# {{ ansible_managed }}` header line (Ansible's text differs from a plain render)."""
    return [ln for ln in text.splitlines() if not ln.startswith("# Rendered by") and ln != "# test"]


def _changed(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(_body(a), _body(b), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_elasticsearch_filebeat_and_kibana_are_gone(run: Run) -> None:
    names = [*run.containers, *(r.name for r in run.mocks.resources), *IMAGES, *MEMORY_MB, *PASSWORDS]
    assert not [n for n in names if any(g in n.lower() for g in GONE)]
    ops = _files(run)["edge-nginx/seclab-ops.conf"]["content"]
    assert "kibana" not in ops and "/grafana/" in ops
    assert {"logsearch", "logsearch-gateway", "logshipper", "logsearch-keeper"} <= set(run.containers)


def test_engine_settings_are_the_roles_files_at_the_roles_paths(run: Run) -> None:
    native, files = role_vars(), _files(run)
    engine = run.containers["logsearch"]
    mounts = _mounts(engine)
    for name in ("opensearch.yml", "jvm.options"):
        mine = files[f"logsearch-engine/{name}"]["content"]
        assert _body(mine) == _body(native_render(f"{name}.j2", native)), name
        assert f"{native['logsearch_conf_dir']}/{name}" in mounts
    descriptor = files["logsearch-plugin-descriptor.properties"]["content"]
    assert descriptor == native_render("plugin-descriptor.properties.j2", native)
    assert f"version={run.lab.logging.opensearch_version}\n" in descriptor
    assert f"{native['logsearch_home']}/current/modules/ingest-common/plugin-descriptor.properties" in mounts
    vols = {m["target"] for m in engine["mounts"] if m["type"] == "volume"}
    assert {native["logsearch_data_dir"], native["logsearch_tmp_dir"], native["logsearch_log_dir"]} <= vols
    assert engine["command"] == [f"{native['logsearch_home']}/current/bin/opensearch"]


def test_the_image_is_the_pinned_archive_and_ingest_jars() -> None:
    from labdef import load

    lab, native = load(), role_vars()
    args = render.logsearch_build_args(lab)
    assert args["OPENSEARCH_VERSION"] == lab.logging.opensearch_version
    assert args["OPENSEARCH_SHA256"] == lab.logging.opensearch_sha256
    assert args["INGEST_JARS"].splitlines() == [f"{j['artifact']} {j['file']} {j['sha256']}"
                                                for j in native["logsearch_ingest_jars"]]
    dockerfile = (IAC_DIR / "images" / "logsearch.Dockerfile").read_text()
    assert "integ-test-zip:opensearch:${OPENSEARCH_VERSION}:zip" in dockerfile
    assert dockerfile.count("sha256sum -c") == 2  # the archive and every jar, against the pins
    assert "COPY logsearch ./logsearch" in (IAC_DIR / "images" / "app.Dockerfile").read_text()


def test_engine_is_reached_only_through_its_gateway_sidecar(run: Run) -> None:
    native, files = role_vars(), _files(run)
    gw, engine = run.containers["logsearch-gateway"], run.containers["logsearch"]
    assert gw["networkMode"] == f"container:{run.lab.name}-logsearch" and not gw.get("networksAdvanced")
    assert not gw.get("hostname")
    assert [n["aliases"] for n in engine["networksAdvanced"]] == [[render.LOGSEARCH_HOST]]
    conf = files["logsearch-gateway-gateway.conf"]["content"]
    # The role's gateway, but listening on the engine container's address instead of the host's loopback.
    port = native["logsearch_gateway_port"]
    assert _changed(native_render("gateway.conf.j2", native), conf) == [
        f"-        listen 127.0.0.1:{port} ssl;", f"+        listen 0.0.0.0:{port} ssl;"]
    assert "ssl_verify_client on;" in conf and "127.0.0.1:" + str(native["logsearch_engine_port"]) in conf
    mounts = _mounts(gw)
    for path in ("certs/logsearch.chain.crt", "private/logsearch.key", "ca/ca-bundle.crt", "crl/crl.pem"):
        assert f"{native['logsearch_pki_dir']}/{path}" in mounts, path


def _blocks(conf: str) -> list[str]:
    return re.findall(r"ruleset\(name=\"seclab_in_\d+\"\) \{.*?\n\}\ninput\([^)]*\)", conf, re.DOTALL)


def test_shipper_is_the_roles_rsyslog_for_the_files_containers_write(run: Run) -> None:
    native = role_vars()
    conf = _files(run)["logshipper-rsyslog.conf"]["content"]
    native_conf = native_render("rsyslog.conf.j2", native)
    # Each source the containers have is shipped exactly as natively (same path, dataset, format, pipeline).
    wanted = [s for s in native["logsearch_sources"] if s["dataset"] in render.DOCKER_LOG_DATASETS]
    assert [s["dataset"] for s in wanted] == list(render.DOCKER_LOG_DATASETS)
    assert re.findall(r'input\(type="imfile" file="([^"]+)"', conf) == [s["path"] for s in wanted]
    native_inputs = {re.sub(r"seclab_in_\d+", "", b) for b in _blocks(native_conf)}
    assert {re.sub(r"seclab_in_\d+", "", b) for b in _blocks(conf)} <= native_inputs
    # The shipping ruleset and queue: the same but for the gateway's host and the shipper's own log files.
    ship = re.search(r"ruleset\(name=\"seclab_ship\"\).*?\n\}\n", conf, re.DOTALL)
    native_ship = re.search(r"ruleset\(name=\"seclab_ship\"\).*?\n\}\n", native_conf, re.DOTALL)
    assert ship and native_ship
    assert _changed(native_ship.group(0), ship.group(0)) == [
        '-         server="127.0.0.1" serverport="9200" usehttps="on"',
        f'+         server="{render.LOGSEARCH_HOST}" serverport="9200" usehttps="on"',
        f'-         errorFile="{native["logsearch_error_file"]}"',
        f'+         errorFile="{render.SHIPPER_LOG_DIR}/shipper-rejected.json"']
    # The WAF in the edge container writes its audit log where the shipper reads it.
    waf = render.waf_files(run.lab)
    audit = next(s["path"] for s in wanted if s["dataset"] == "modsecurity.audit")
    assert any(f"SecAuditLog {audit}" in text for text in waf.values())
    shipper = run.containers["logshipper"]
    edge_logs = [m for m in shipper["mounts"] if m["target"] == run.lab.paths.logs]
    assert edge_logs and edge_logs[0]["readOnly"] is True and edge_logs[0]["type"] == "volume"


def test_keeper_applies_logsearch_resources_and_the_retention(run: Run) -> None:
    native, files = role_vars(), _files(run)
    keeper = run.containers["logsearch-keeper"]
    script = keeper["command"][-1]
    prefix, gw = native["logsearch_index_prefix"], f"https://logsearch:{native['logsearch_gateway_port']}"
    assert f"python -m logsearch apply --lab /etc/seclab/lab.json --prefix {prefix} --gateway-url {gw}" in script
    assert f"python -m logsearch keeper --lab /etc/seclab/lab.json --prefix {prefix}" in script
    assert f"--stats-file {native['logsearch_stats_file']}" in script
    assert f"--interval {native['logsearch_keeper_interval']}" in script
    # Retention comes from lab.json (lab.yml logging.retention_days), the file the keeper is given.
    assert files["logsearch-keeper-lab.json"]["content"] == render.lab_json(run.lab)
    assert files["logsearch-keeper-log-reader.key"]["source"].endswith("/private/log-reader.key")
    assert files["logshipper-log-shipper.key"]["source"].endswith("/private/log-shipper.key")
    stats = [m for m in keeper["mounts"] if m["target"] == native["logsearch_shipper_work_dir"]]
    assert stats and stats[0]["readOnly"] is True


def test_logsearch_cli_takes_the_gateway_url(tmp_path: Any, monkeypatch: Any) -> None:
    """The keeper container names the gateway; without --gateway-url it is the host's loopback port."""
    import json

    import labdef
    from logsearch import __main__ as cli

    lab = labdef.load()
    lab_file = tmp_path / "lab.json"
    lab_file.write_text(json.dumps(labdef.as_vars(lab)))
    seen: list[str] = []

    def fake_client(settings: Any) -> Any:
        seen.append(settings.url)
        raise RuntimeError("stop")

    monkeypatch.setattr(cli, "client", fake_client)
    for extra, url in (([], f"https://127.0.0.1:{lab.ports.logsearch}"), (["--gateway-url", "https://logsearch:9200"],
                                                                           "https://logsearch:9200")):
        try:
            cli.main(["apply", "--lab", str(lab_file), *extra])
        except RuntimeError:
            pass
        assert seen[-1] == url
