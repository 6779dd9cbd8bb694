"""`lab report`: gather compliance, attack, WAF, load, TLS, lynis and identity results into one page.

Why one builder with files as inputs: every figure in the report must come from a run that left a
file behind (JUnit, JSON, lynis report), which is copied next to the page under evidence/ and linked
from its row. A section whose input is missing says "not run" and shows the command that produces it.
Outputs: DIR/index.html (for a person), DIR/report.json (the same data), DIR/report.junit.xml
(compliance and attacks for CI), DIR/compliance.junit.xml (pytest's own file).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from seclab.report import inputs as inp
from seclab.report import lynis as lynis_mod
from seclab.report.svg import latency_svg, layers_svg

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Options:
    """What to read (files) and what to run; `None` file + run False = "not run" in the report."""

    out: Path
    compliance_junit: Path | None = None
    run_compliance: bool = True
    compliance_timeout_s: int = 900
    attacks: Path | None = None
    run_attacks: bool = False
    attacks_detection_only: Path | None = None
    waf_fp: Path | None = None
    waf_crs: Path | None = None
    waf_base_url: str | None = None
    waf_ca_cert: str | None = None
    bench: list[Path] = field(default_factory=list)
    testssl: Path | None = None
    lynis_report: Path | None = None
    run_lynis: bool = True
    lynis_timeout_s: int = lynis_mod.DEFAULT_TIMEOUT_S
    identity: dict[str, Any] | None = None
    collect_identity: bool = True
    infra_dir: Path = inp.INFRA_DIR


def _evidence(opts: Options, src: Path, name: str | None = None) -> str:
    """Copy an input next to the report (evidence/NAME) and return the relative link."""
    dest_dir = opts.out / "evidence"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    return f"evidence/{dest.name}"


def _read_file_section(opts: Options, key: str, path: Path | None, reader: Any) -> dict[str, Any]:
    if path is None:
        return inp.not_run(key, "no input file given")
    if not path.exists():
        return inp.not_run(key, f"{path} does not exist")
    try:
        data = reader(inp.read_json(path))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return inp.not_run(key, f"{path}: unreadable ({type(exc).__name__}: {exc})")
    data["evidence"] = _evidence(opts, path)
    return data


# --- sections ------------------------------------------------------------------------------------------

def compliance_section(opts: Options) -> dict[str, Any]:
    junit = opts.compliance_junit
    note = ""
    if junit is None and opts.run_compliance:
        junit = opts.out / "compliance.junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests/infra", "-m", "infra", "-q", "-p", "no:cacheprovider",
               "--junitxml", str(junit)]
        try:
            proc = subprocess.run(cmd, check=False, cwd=inp.REPO, capture_output=True, text=True, timeout=opts.compliance_timeout_s)
            note = (proc.stdout.strip().splitlines() or [""])[-1]
        except subprocess.TimeoutExpired:
            return inp.not_run("compliance", f"pytest did not finish within {opts.compliance_timeout_s}s")
        if not junit.exists():
            return inp.not_run("compliance", f"pytest wrote no JUnit file: {(proc.stderr or proc.stdout)[-400:]}")
    if junit is None:
        return inp.not_run("compliance", "no JUnit file given and running the checks was switched off")
    if not junit.exists():
        return inp.not_run("compliance", f"{junit} does not exist")
    controls, waivers = inp.load_catalog(opts.infra_dir)
    try:
        tests = inp.parse_junit(junit)
    except ET.ParseError as exc:
        return inp.not_run("compliance", f"{junit}: not JUnit XML ({exc})")
    data = inp.compliance_summary(tests, controls, waivers)
    data["evidence"] = _evidence(opts, junit, "compliance.junit.xml")
    if junit.resolve() != (opts.out / "compliance.junit.xml").resolve():
        shutil.copyfile(junit, opts.out / "compliance.junit.xml")
    data["pytest_summary"] = note
    return data


def attacks_section(opts: Options) -> dict[str, Any]:
    path = opts.attacks
    if path is None and opts.run_attacks:
        if importlib.util.find_spec("seclab.commands.attack") is None:
            return inp.not_run("attacks", "`lab attack` is not available in this checkout yet")
        path = opts.out / "attacks.json"
        subprocess.run([sys.executable, "-m", "seclab.cli", "attack", "--json", str(path)], cwd=inp.REPO,
                       capture_output=True, text=True, timeout=1800, check=False)
    return _read_file_section(opts, "attacks", path, inp.attacks_summary)


def defence_demo_section(opts: Options) -> dict[str, Any]:
    """Blocking and DetectionOnly attack runs side by side: what the inner layers still stop."""
    path = opts.attacks_detection_only
    if path is None:
        return inp.not_run("defence_demo", "no `lab attack --edge detection-only --json` file given")
    blocking = opts.attacks if opts.attacks is not None else opts.out / "attacks.json"
    for p in (path, blocking):
        if not p.exists():
            return inp.not_run("defence_demo", f"{p} does not exist (both runs are needed)")
    try:
        data = inp.defence_demo_summary(inp.read_json(blocking), inp.read_json(path))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return inp.not_run("defence_demo", f"{path}: unreadable ({type(exc).__name__}: {exc})")
    data["evidence"] = _evidence(opts, path, "attacks-detection-only.json")
    data["blocking_evidence"] = _evidence(opts, blocking)
    return data


def _run_waf(opts: Options, module: str, name: str) -> Path | None:
    if not opts.waf_base_url:
        return None
    out = opts.out / name
    cmd = [sys.executable, "-m", module, "--base-url", opts.waf_base_url, "--json", str(out)]
    if opts.waf_ca_cert:
        cmd += ["--ca-cert", opts.waf_ca_cert]
    subprocess.run(cmd, cwd=inp.REPO, capture_output=True, text=True, timeout=3600, check=False)
    return out


def waf_section(opts: Options) -> dict[str, Any]:
    fp = opts.waf_fp or _run_waf(opts, "benchmarks.waf.falsepositives", "waf-fp.json")
    crs = opts.waf_crs or _run_waf(opts, "benchmarks.waf.crs_regression", "waf-crs.json")
    return {"falsepositives": _read_file_section(opts, "waf_fp", fp, inp.waf_fp_summary),
            "detection": _read_file_section(opts, "waf_crs", crs, inp.waf_crs_summary)}


def _bench_files(opts: Options) -> tuple[list[tuple[Path, Any]], list[tuple[Path, Any]], str | None]:
    """The --bench files split into stepped runs and layer tables (`lab bench --layers`); a missing file
    is the reason both sections are not run."""
    steps: list[tuple[Path, Any]] = []
    layer_files: list[tuple[Path, Any]] = []
    for p in opts.bench:
        if not p.exists():
            return [], [], f"{p} does not exist"
        data = inp.read_json(p)
        (layer_files if inp.is_layers(data) else steps).append((p, data))
    return steps, layer_files, None


def performance_section(opts: Options) -> dict[str, Any]:
    if not opts.bench:
        return inp.not_run("bench", "no `lab bench --json` file given")
    files, _, missing = _bench_files(opts)
    if missing:
        return inp.not_run("bench", missing)
    if not files:
        return inp.not_run("bench", "only a layer table was given (see Layers)")
    runs, links = [], {}
    for p, d in files:
        runs.append((p.name, d))
        links[p.name] = _evidence(opts, p)
    try:
        data = inp.bench_summary(runs)
    except ValueError as exc:
        return inp.not_run("bench", str(exc))
    for r in data["rows"]:
        r["evidence"] = links[r["evidence"]]
    data["plot_svg"] = latency_svg(data["rows"], data["target_ms"], max_users=data["max_users"])
    return data


def layers_section(opts: Options) -> dict[str, Any]:
    """The last `lab bench --layers --json` file among --bench: the layer table and its bar chart."""
    _, files, missing = _bench_files(opts)
    if missing:
        return inp.not_run("layers", missing)
    if not files:
        return inp.not_run("layers", "no `lab bench --layers --json` file given")
    p, d = files[-1]
    try:
        data = inp.layers_summary(p.name, d)
        # Two or more layer files: the first is "before", the last "after" (an optimisation's two runs).
        first = inp.layers_summary(files[0][0].name, files[0][1]) if len(files) > 1 else None
    except (ValueError, KeyError, TypeError) as exc:
        return inp.not_run("layers", str(exc))
    data["evidence"] = _evidence(opts, p)
    data["plot_svg"] = layers_svg(data)
    if first is not None:
        data["compare"] = {"before": _evidence(opts, files[0][0]), "before_run": first["run"],
                           "rows": inp.layers_compare(first, data)}
    return data


def tls_section(opts: Options) -> dict[str, Any]:
    return _read_file_section(opts, "tls", opts.testssl, inp.tls_summary)


def lynis_section(opts: Options) -> dict[str, Any]:
    try:
        if opts.lynis_report is not None:
            if not opts.lynis_report.exists():
                return inp.not_run("lynis", f"{opts.lynis_report} does not exist")
            data = lynis_mod.parse(opts.lynis_report.read_text(encoding="utf-8", errors="replace"))
            data["evidence"] = _evidence(opts, opts.lynis_report, "lynis-report.dat")
        elif opts.run_lynis:
            report = opts.out / "evidence" / "lynis-report.dat"
            report.parent.mkdir(parents=True, exist_ok=True)
            data = lynis_mod.run(report, timeout_s=opts.lynis_timeout_s)
            data["evidence"] = "evidence/lynis-report.dat"
        else:
            return inp.not_run("lynis", "running lynis was switched off")
    except lynis_mod.LynisError as exc:
        return inp.not_run("lynis", str(exc))
    if data.get("hardening_index") is None:
        return inp.not_run("lynis", "the lynis report has no hardening_index (audit cut short?)")
    data["status"] = "ok"
    data["hardening"] = _hardening_state()
    return lynis_mod.explain(data, lynis_mod.load_explained())


def _hardening_state() -> dict[str, Any] | None:
    """The os_hardening role's record on this host (enabled, counts by status), shown beside the index."""
    try:
        import labdef

        path = Path(labdef.load().paths.etc) / "os_hardening.json"
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, labdef.LabDefinitionError):
        return None
    items = state.get("items", {}).values()
    return {"enabled": bool(state.get("enabled")), "reason": state.get("reason", ""),
            "applied": sum(1 for i in items if i.get("status") == "applied"),
            "not_applicable": sum(1 for i in items if i.get("status") == "not applicable"),
            "proc_sys_readonly": state.get("proc_sys_readonly")}


def identity_section(opts: Options) -> dict[str, Any]:
    st = opts.identity
    if st is None and opts.collect_identity:
        try:
            import labdef
            from labdef import status

            st = status.collect(labdef.load())
        except Exception as exc:  # noqa: BLE001 - a report must still be written when the lab is half up
            return inp.not_run("identity", f"{type(exc).__name__}: {exc}")
    if not st:
        return inp.not_run("identity", "status not collected")
    idp = st.get("idp", {})
    services = st.get("services", {})
    kind = idp.get("kind", "unknown")
    label = idp.get("label") or (f"Keycloak {idp['version']}" if kind == "keycloak" and idp.get("version") else kind)
    return {"status": "ok", "kind": kind, "issuer": idp.get("issuer"), "version": idp.get("version"),
            "label": label, "stand_in": kind != "keycloak",
            "idp_up": bool(services.get("idp", {}).get("up")),
            "services": {k: bool(v.get("up")) for k, v in services.items()},
            "edge_url": st.get("edge", {}).get("url")}


# --- outputs -------------------------------------------------------------------------------------------

def build(opts: Options) -> dict[str, Any]:
    """Collect every section, write index.html, report.json and report.junit.xml; return the data."""
    opts.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "compliance": compliance_section(opts),
        "attacks": attacks_section(opts),
        "defence_demo": defence_demo_section(opts),
        "waf": waf_section(opts),
        "performance": performance_section(opts),
        "layers": layers_section(opts),
        "tls": tls_section(opts),
        "lynis": lynis_section(opts),
        "identity": identity_section(opts),
    }
    (opts.out / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    write_junit(data, opts.out / "report.junit.xml")
    (opts.out / "index.html").write_text(render_html(data), encoding="utf-8")
    return data


def write_junit(data: dict[str, Any], path: Path) -> None:
    """Compliance tests (one case per check, named by control) and attacks (failure = the attack worked
    or proved nothing) as one JUnit file; a section that was not run is one skipped case saying so."""
    suites = ET.Element("testsuites", name="seclab report")

    def suite(name: str) -> ET.Element:
        return ET.SubElement(suites, "testsuite", name=name)

    comp = suite("compliance")
    c = data["compliance"]
    if c.get("status") != "ok":
        ET.SubElement(ET.SubElement(comp, "testcase", classname="compliance", name="not run"), "skipped",
                      message=f"{c.get('reason')}; run: {c.get('command')}")
    else:
        for row in c["rows"]:
            for t in row["tests"]:
                tc = ET.SubElement(comp, "testcase", classname=f"compliance.{row['id']}", name=t["nodeid"])
                if t["status"] in ("failed", "error"):
                    ET.SubElement(tc, "failure" if t["status"] == "failed" else "error", message=t["message"][:500])
                elif t["status"] in ("pending", "skipped"):
                    ET.SubElement(tc, "skipped", message=t["message"][:500])
    att = suite("attacks")
    a = data["attacks"]
    if a.get("status") != "ok":
        ET.SubElement(ET.SubElement(att, "testcase", classname="attacks", name="not run"), "skipped",
                      message=f"{a.get('reason')}; run: {a.get('command')}")
    else:
        for r in a["rows"]:
            tc = ET.SubElement(att, "testcase", classname=f"attacks.{r['suite'] or 'suite'}", name=r["id"])
            if r["outcome"] != "stopped":
                ET.SubElement(tc, "failure", message=f"{r['outcome']}: {r['title']}")
    for s in suites:
        cases = list(s)
        s.set("tests", str(len(cases)))
        s.set("failures", str(sum(1 for tc in cases if tc.find("failure") is not None)))
        s.set("errors", str(sum(1 for tc in cases if tc.find("error") is not None)))
        s.set("skipped", str(sum(1 for tc in cases if tc.find("skipped") is not None)))
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.1f} %"


def render_html(data: dict[str, Any]) -> str:
    """The page: a <style> block allowed by its hash in the page's own CSP; no script, no style attribute."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    css_hash = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    svg = data["performance"].get("plot_svg", "") if data["performance"].get("status") == "ok" else ""
    lsvg = data["layers"].get("plot_svg", "") if data["layers"].get("status") == "ok" else ""
    return env.get_template("index.html.j2").render(
        d=data, css=css, css_hash=css_hash, plot=jinja2.utils.markupsafe.Markup(svg), layers=inp.LAYERS,
        layers_plot=jinja2.utils.markupsafe.Markup(lsvg))
