"""`lab model add PATH` / `lab model list`: the GGUF models the local llama.cpp server can serve.

`add` validates the file with the gguf reader BEFORE anything changes (a truncated or foreign file
must not take the model server down: ASVS 4.0.3 V12.2.1 file content validation), copies it
atomically under `<paths.data>/models/` (0644: weights are not secret), points the server's config
`<paths.etc>/llama.json` at it and restarts the server (`supervisorctl restart llama`, or
`systemctl restart seclab-llama` where systemd runs). llama.json also carries the server's API key,
so it is rewritten in place keeping its mode and owner (0640 root:<server user>, set by the llama role).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

import labdef
from labdef.errors import LabError

app = typer.Typer(help="Models of the local llama.cpp server.", no_args_is_help=True)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LabOpt = Annotated[Path | None, typer.Option("--lab", help="lab.yml (default: ./lab.yml or $SECLAB_LAB_FILE)")]


def gguf_info(path: Path) -> dict[str, Any]:
    """Parse the GGUF header and metadata; raise LabError if it is not a usable llama.cpp model."""
    try:
        import gguf
    except ImportError:
        raise LabError("the gguf package is not installed (pip install gguf)") from None
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise LabError(f"{path}: not a GGUF file (bad magic)")
    try:
        r = gguf.GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means: not a usable model
        raise LabError(f"{path}: unreadable GGUF ({type(exc).__name__}: {str(exc)[:120]})") from None

    def field(name: str) -> Any:
        f = r.fields.get(name)
        if f is None:
            return None
        return f.contents() if hasattr(f, "contents") else bytes(f.parts[f.data[0]]).decode()

    arch = field("general.architecture")
    if not arch:
        raise LabError(f"{path}: no general.architecture in the GGUF metadata")
    if field("tokenizer.ggml.model") is None:
        raise LabError(f"{path}: no tokenizer in the GGUF metadata")
    return {"architecture": str(arch), "name": str(field("general.name") or ""), "tensors": len(r.tensors),
            "bytes": path.stat().st_size}


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    st = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, st.st_mode & 0o777 if st else mode)
        if st is not None and os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_llama_config(config: Path, model: Path, alias: str, *, lab: labdef.LabDefinition, n_ctx: int) -> None:
    """Point llama.json at `model`, keeping every other setting (api_key above all)."""
    data: dict[str, Any] = json.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    data.setdefault("host", "127.0.0.1")  # loopback only: the gateway is the only client
    data.setdefault("port", lab.ports.llama)
    models = data.get("models") or [{}]
    models[0] = {**models[0], "model": str(model), "model_alias": alias, "n_ctx": models[0].get("n_ctx", n_ctx)}
    data["models"] = models
    _atomic_write(config, (json.dumps(data, indent=2) + "\n").encode(), 0o640)


def restart_server(name: str = "llama") -> str:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        cmd = ["systemctl", "restart", f"seclab-{name}"]
    elif shutil.which("supervisorctl"):
        cmd = ["supervisorctl", "restart", name]
    else:
        raise LabError("neither systemd nor supervisorctl found: restart the llama server yourself")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {(res.stdout + res.stderr).strip()[:200]}")
    return " ".join(cmd)


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a .gguf file")],
    name: Annotated[str | None, typer.Option("--name", help="model alias (default: file stem)")] = None,
    lab_file: LabOpt = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="default: <paths.data>/models")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="default: <paths.etc>/llama.json")] = None,
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=64)] = 512,
    restart: Annotated[bool, typer.Option("--restart/--no-restart")] = True,
) -> None:
    """Validate a GGUF model, install it and make the llama server serve it."""
    lab = labdef.load(lab_file)
    alias = name or path.stem.lower()
    if not NAME_RE.match(alias):
        raise LabError(f"model name {alias!r}: use lowercase letters, digits, '.', '_' or '-'")
    info = gguf_info(path)
    dest_dir = models_dir or Path(lab.paths.data) / "models"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{alias}.gguf"
    if path.resolve() != dest.resolve():
        fd, tmp = tempfile.mkstemp(prefix=f".{alias}.", dir=dest_dir)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    write_llama_config(config or Path(lab.paths.etc) / "llama.json", dest, alias, lab=lab, n_ctx=n_ctx)
    typer.echo(f"installed {dest} ({info['architecture']}, {info['tensors']} tensors, {info['bytes']} bytes)")
    if restart:
        typer.echo(f"restarted: {restart_server()}")


@app.command("list")
def list_(
    lab_file: LabOpt = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir")] = None,
    config: Annotated[Path | None, typer.Option("--config")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Installed models; `*` marks the one llama.json points at."""
    lab = labdef.load(lab_file)
    d = models_dir or Path(lab.paths.data) / "models"
    cfg = config or Path(lab.paths.etc) / "llama.json"
    active = None
    if cfg.exists():
        try:
            active = (json.loads(cfg.read_text(encoding="utf-8")).get("models") or [{}])[0].get("model")
        except (OSError, ValueError):
            active = None
    rows = []
    for p in sorted(d.glob("*.gguf")) if d.is_dir() else []:
        try:
            info: dict[str, Any] = gguf_info(p)
        except LabError as exc:
            info = {"error": str(exc)}
        rows.append({"path": str(p), "active": str(p) == active, **info})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no models in {d}")
    for r in rows:
        mark = "*" if r["active"] else " "
        typer.echo(f"{mark} {Path(r['path']).name:<32} {r.get('architecture', '?'):<8} {r.get('bytes', 0):>12}  "
                   f"{r.get('error', '')}")
