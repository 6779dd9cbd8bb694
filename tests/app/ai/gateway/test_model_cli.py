"""`lab model add|list` on temporary directories (no restart: there is no llama program here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from seclab.commands.model import app


def _args(tmp: Path) -> list[str]:
    return ["--models-dir", str(tmp / "models"), "--config", str(tmp / "llama.json")]


def test_add_validates_copies_and_keeps_api_key(tmp_path: Path, tiny_model: Path) -> None:
    cfg = tmp_path / "llama.json"
    cfg.write_text(json.dumps({"api_key": "k" * 32, "port": 18081, "models": [{"model": "/old.gguf", "n_ctx": 256}]}))
    os.chmod(cfg, 0o640)
    out = CliRunner().invoke(app, ["add", str(tiny_model), "--name", "tiny", "--no-restart", *_args(tmp_path)])
    assert out.exit_code == 0, out.output
    dest = tmp_path / "models" / "tiny.gguf"
    assert dest.read_bytes() == tiny_model.read_bytes()
    data = json.loads(cfg.read_text())
    assert data["api_key"] == "k" * 32 and data["host"] == "127.0.0.1"
    assert data["models"][0] == {"model": str(dest), "model_alias": "tiny", "n_ctx": 256}
    assert cfg.stat().st_mode & 0o777 == 0o640
    out = CliRunner().invoke(app, ["list", "--json", *_args(tmp_path)])
    rows = json.loads(out.output)
    assert rows[0]["active"] and rows[0]["architecture"] == "llama"


def test_add_refuses_a_non_gguf_file(tmp_path: Path) -> None:
    bad = tmp_path / "evil.gguf"
    bad.write_bytes(b"#!/bin/sh\necho hi\n")
    out = CliRunner().invoke(app, ["add", str(bad), "--no-restart", *_args(tmp_path)])
    assert type(out.exception).__name__ == "LabError" and not (tmp_path / "models" / "evil.gguf").exists()
    assert not (tmp_path / "llama.json").exists()


def test_add_refuses_a_truncated_gguf(tmp_path: Path, tiny_model: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:5000])
    out = CliRunner().invoke(app, ["add", str(cut), "--no-restart", *_args(tmp_path)])
    assert type(out.exception).__name__ == "LabError" and not (tmp_path / "models" / "cut.gguf").exists()
