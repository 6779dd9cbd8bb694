"""Fixtures shared by the playbook render tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import labdef


@pytest.fixture(scope="module")
def labvars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default lab definition as the extra-vars file `./lab up` hands to Ansible."""
    path = tmp_path_factory.mktemp("vars") / "labvars.json"
    path.write_text(json.dumps(labdef.as_vars(labdef.load(labdef.DEFAULT_PATH))))
    return path
