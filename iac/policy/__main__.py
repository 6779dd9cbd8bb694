"""The seclab CrossGuard pack: `pulumi preview --policy-pack iac/policy` (needs the Pulumi CLI)."""

from pulumi_policy import PolicyPack
from rules import POLICIES  # type: ignore[import-not-found]  # run by the CLI from this directory

PolicyPack(name="seclab-docker", policies=POLICIES)
