"""Attack suites: each module registers its cases with `attacks.runner.attack` when imported."""
