"""The page's sources: API types generated from the app's OpenAPI schema (never by hand), TypeScript
strict, the Vitest component tests, and the CSP hash step of the build."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need
from tests.web.conftest import WEB, has_node_modules, node_modules, npx

NODE_MISSING = "node and the web role's node_modules (./lab up builds the page)"


def test_openapi_json_is_the_apps_current_schema() -> None:
    """web/openapi.json must be the app's schema as it is now; regenerate with
    `python -c 'import json; from app.main import create_app; print(json.dumps(create_app().openapi(), indent=2, sort_keys=True))' > web/openapi.json`."""
    from app.main import create_app

    committed = json.loads((WEB / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(create_app().openapi())), "web/openapi.json is stale: regenerate it"


def test_schema_types_are_openapi_typescripts_output(tmp_path: Path) -> None:
    need(has_node_modules(), NODE_MISSING)
    out = tmp_path / "schema.d.ts"
    res = subprocess.run([str(node_modules() / ".bin" / "openapi-typescript"), str(WEB / "openapi.json"), "-o", str(out)],
                         check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == (WEB / "src" / "api" / "schema.d.ts").read_text(), "run `npm run gen:api` in web/"


def test_typescript_is_strict_and_compiles(web_copy: Path) -> None:
    config = json.loads((WEB / "tsconfig.json").read_text())
    assert config["compilerOptions"]["strict"] is True
    need(has_node_modules(), NODE_MISSING)
    res = npx(web_copy, "tsc", "--noEmit")
    assert res.returncode == 0, res.stdout[-4000:]


def test_vitest_component_tests_pass(web_copy: Path) -> None:
    need(has_node_modules(), NODE_MISSING)
    res = npx(web_copy, "vitest", "run", "--reporter=dot")
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert "failed" not in res.stdout.lower().split("test files")[-1], res.stdout[-2000:]


def _csp_hashes(out: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node
    return subprocess.run([node, str(WEB / "scripts" / "csp-hashes.mjs"), str(out)], check=False, capture_output=True, text=True, timeout=60)


def test_csp_hash_step_hashes_inline_scripts_and_skips_data_blocks(tmp_path: Path) -> None:
    need(shutil.which("node") is not None, "node (the web role installs it)")
    inline = "self.__next_f=self.__next_f||[];"
    (tmp_path / "index.html").write_text(
        f'<html><head><script src="/_next/a.js"></script><script>{inline}</script>'
        '<script type="application/json">{"not":"run"}</script></head></html>'
    )
    res = _csp_hashes(tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads((tmp_path / ".seclab-csp.json").read_text())
    want = "'sha256-" + base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode() + "'"
    assert got == {"script_hashes": [want], "pages": {"/index.html": 1}}


@pytest.mark.parametrize("bad", ['<button onclick="x()">b</button>', '<a href="javascript:x()">a</a>',
                                 "<style>p{}</style>", '<p style="color:red">p</p>'])
def test_csp_hash_step_fails_the_build_on_what_a_hash_cannot_allow(tmp_path: Path, bad: str) -> None:
    need(shutil.which("node") is not None, "node (the web role installs it)")
    (tmp_path / "index.html").write_text(f"<html><body>{bad}</body></html>")
    res = _csp_hashes(tmp_path)
    assert res.returncode == 1
    assert "strict CSP forbids" in res.stderr
    assert not (tmp_path / ".seclab-csp.json").exists()
