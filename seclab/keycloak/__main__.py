"""`python -m seclab.keycloak render|converge ... --json`: run by the keycloak Ansible role as root."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labdef import LabDefinition


def load_lab(path: Path) -> LabDefinition:
    """lab.json as rendered by `labdef.as_vars` (`{"lab": {...}}`), or a bare definition."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return LabDefinition.model_validate(data.get("lab", data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seclab.keycloak", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="credentials that are missing + the realm import file (0600)")
    render.add_argument("--lab", type=Path, required=True, help="lab.json ({'lab': {...}})")
    render.add_argument("--secrets-dir", type=Path, required=True)
    render.add_argument("--realm-export", type=Path, required=True)
    conv = sub.add_parser("converge", help="apply the realm to the running Keycloak (admin REST API)")
    conv.add_argument("--lab", type=Path, required=True, help="lab.json ({'lab': {...}})")
    conv.add_argument("--secrets-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "render":
        from seclab.keycloak.provision import ProvisionError, provision

        try:
            result = provision(load_lab(args.lab), secrets_dir=args.secrets_dir, realm_export=args.realm_export)
        except ProvisionError as exc:
            print(f"keycloak render: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result))
    elif args.command == "converge":
        from seclab.keycloak.converge import ConvergeError, converge
        from seclab.keycloak.provision import ProvisionError as RenderError

        try:
            result = converge(load_lab(args.lab), secrets_dir=args.secrets_dir)
        except (ConvergeError, RenderError, OSError) as exc:
            print(f"keycloak converge: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
