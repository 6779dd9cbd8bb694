"""`python -m tools.rehearsal` (what `.ci/rehearse` runs)."""

import sys

from .cli import main

sys.exit(main())
