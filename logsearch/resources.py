"""The engine's index template and ingest pipelines, from logsearch/resources (one copy for every engine).

Why compare before writing: `./lab up` must report changed=0 when the engine already holds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

RESOURCE_DIR = Path(__file__).resolve().parent / "resources"


def _load(path: Path, prefix: str) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8").replace("{prefix}", prefix))
    if not isinstance(data, dict):
        raise TypeError(f"{path}: expected a JSON object")
    return data


def index_template(prefix: str) -> dict[str, Any]:
    return _load(RESOURCE_DIR / "index-template.json", prefix)


def pipelines(prefix: str) -> dict[str, dict[str, Any]]:
    """Pipeline name (<prefix>-<file stem>) -> body."""
    return {f"{prefix}-{p.stem}": _load(p, prefix) for p in sorted((RESOURCE_DIR / "pipelines").glob("*.json"))}


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _same_template(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The engine returns settings in its own shape (nested, as strings): compare what we set."""
    settings = stored.get("template", {}).get("settings", {}).get("index", {})
    for key, value in wanted["template"]["settings"].items():
        short = key.removeprefix("index.")
        node: Any = settings
        for part in short.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node).lower() != str(value).lower():
            return False
    return (
        _normal(stored.get("template", {}).get("mappings")) == _normal(wanted["template"]["mappings"])
        and stored.get("index_patterns") == wanted["index_patterns"]
        and stored.get("priority") == wanted["priority"]
    )


async def apply(http: httpx.AsyncClient, prefix: str) -> list[str]:
    """Put the template and pipelines that differ from the engine's; returns what was written."""
    written: list[str] = []
    wanted = index_template(prefix)
    resp = await http.get(f"/_index_template/{prefix}")
    stored = resp.json().get("index_templates", []) if resp.status_code == 200 else []
    if not stored or not _same_template(stored[0]["index_template"], wanted):
        (await http.put(f"/_index_template/{prefix}", json=wanted)).raise_for_status()
        written.append(f"index_template/{prefix}")
    for name, body in pipelines(prefix).items():
        resp = await http.get(f"/_ingest/pipeline/{name}")
        if resp.status_code == 200 and _normal(resp.json().get(name)) == _normal(body):
            continue
        (await http.put(f"/_ingest/pipeline/{name}", json=body)).raise_for_status()
        written.append(f"pipeline/{name}")
    return written
