"""Pulumi entry point: `pulumi up` in iac/ (or the Automation API) runs this file.

Why a two-line shim: the program lives in `iac.program` so tests can import it under mocks, and the
repository root is put on sys.path so `labdef` and `pki` resolve without an install.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iac.program import build

build()
