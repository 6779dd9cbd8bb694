"""Run the Pulumi program once under mocks (no Docker, no CLI, no network) and record every resource.

`set_mocks` must run BEFORE the program is imported (Pulumi unit-testing docs), so the import of
`iac.program` happens inside the fixture.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

PLAIN_PREFIX = "PLAINTEXT-SECRET-"


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass
class LabMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    plaintexts: list[str] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            # A recognisable plaintext per password: the secret-leak test looks for it everywhere.
            plain = f"{PLAIN_PREFIX}{args.name}"
            self.plaintexts.append(plain)
            state.update(result=plain, bcryptHash=f"$2a$10$hash-of-{args.name}")
        if args.typ == "random:index/randomBytes:RandomBytes":
            plain = f"{PLAIN_PREFIX}{args.name}+/"  # '+/' : the program must make it URL-safe
            self.plaintexts.append(plain.rstrip("+/"))
            state.update(base64=plain, hex=plain.encode().hex())
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@dataclass
class Run:
    mocks: LabMocks
    services: dict[str, Any]
    lab: Any = None

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.mocks.resources if r.typ == typ]

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        return {r.name: r.inputs for r in self.of_type("docker:index/container:Container")}

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        return {r.name: r.inputs for r in self.of_type("docker:index/network:Network")}


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base: Path = tmp_path_factory.mktemp("iac")
    mocks = LabMocks()
    # Pulumi's mocks use the main thread's current event loop; an earlier test's asyncio.run() leaves none.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project="seclab", stack="test", preview=False)
    pulumi.runtime.set_all_config({
        "seclab:hostDir": str(base / "host"),
        "seclab:secretsDir": str(base / "secrets"),
        "seclab:pkiDir": str(base / "pki"),
    })
    from iac import program

    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def deploy() -> pulumi.Output[Any]:
        holder["services"] = program.build()
        return pulumi.Output.all(*[svc.container.id for svc in holder["services"].values()])

    deploy()
    from labdef import load

    return Run(mocks, holder["services"], load())
