"""`python -m pki ensure|reload --lab-json /etc/seclab/lab.json --dir /etc/seclab/pki`

`ensure [--reload CMD]...` issues what is missing or due; `reload` reloads, gracefully, every running
service whose loaded certificates differ from the files (pki/services.py, pki/loaded.py).

The entry point the Ansible role calls on the target host, where only the service virtualenv
exists (no Typer app, no lab.yml): it reads the rendered `lab.json` (`labdef.as_vars`) and
prints one JSON object, `{"changed": bool, "issued": [...], ...}`, for `changed_when`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from labdef import LabDefinition

from .ca import ensure
from .layout import DEFAULT_PRIVATE_GROUP, Layout
from .plan import build_plan
from .reload import run_hooks
from .reloader import Reloader
from .services import build_reload_plan


def _load_lab(path: Path) -> LabDefinition:
    data = json.loads(path.read_text(encoding="utf-8"))
    return LabDefinition.model_validate(data.get("lab", data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pki", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ensure", help="issue what is missing or due; print a JSON summary")
    p.add_argument("--lab-json", type=Path, required=True)
    p.add_argument("--dir", type=Path, default=None, help="default: lab.paths.pki")
    p.add_argument("--private-group", default=DEFAULT_PRIVATE_GROUP, help="group of private/ ('' for none)")
    p.add_argument("--reload", action="append", default=[], help="command to run when something changed")
    r = sub.add_parser("reload", help="reload the services whose loaded certificates differ from the files")
    r.add_argument("--lab-json", type=Path, required=True)
    r.add_argument("--dir", type=Path, default=None, help="default: lab.paths.pki")
    r.add_argument("--manager", choices=["supervisor", "systemd"], default=None, help="default: detected")
    args = parser.parse_args(argv)
    try:
        lab = _load_lab(args.lab_json)
    except (OSError, ValueError, ValidationError) as exc:
        print(json.dumps({"failed": True, "msg": f"{args.lab_json}: {exc}"}))
        return 2
    directory = args.dir or Path(lab.paths.pki)
    if args.cmd == "reload":
        return _reload(lab, directory, args.manager)
    result = ensure(build_plan(lab), directory, private_group=args.private_group or None)
    out = result.model_dump(mode="json")
    if result.changed and args.reload:
        hooks = asyncio.run(run_hooks(args.reload))
        out["reload"] = [h.model_dump() for h in hooks]
        if any(h.returncode != 0 for h in hooks):
            # Ansible marks the task failed: the files are new but a service may still serve old ones.
            out["failed"] = True
            out["msg"] = "a reload hook failed"
            print(json.dumps(out))
            return 1
    print(json.dumps(out))
    return 0


def _reload(lab: LabDefinition, directory: Path, manager: str | None) -> int:
    """One JSON object for Ansible: changed when a service was reloaded, failed when one could not be."""
    plan = build_reload_plan(lab, build_plan(lab))
    reloader = Reloader(lab, Layout(directory), manager)  # type: ignore[arg-type]
    outcomes = asyncio.run(reloader.converge(list(plan.consumers)))
    acted = [o for o in outcomes if not o.skipped]
    out = {
        "changed": bool(acted),
        "reloaded": [o.service for o in acted if o.ok],
        "services": [o.model_dump() for o in outcomes],
    }
    if any(not o.ok for o in acted):
        out |= {"failed": True, "msg": "; ".join(f"{o.service}: {o.detail}" for o in acted if not o.ok)}
        print(json.dumps(out))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
