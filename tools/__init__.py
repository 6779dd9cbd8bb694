"""Developer and CI tools that are not part of the installed lab (run from a checkout)."""
