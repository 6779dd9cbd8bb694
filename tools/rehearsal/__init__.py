"""Rehearsal of a first-try install, and isolated dev labs, in pristine Debian 12 roots.

Why it exists: CI on an already-provisioned host hides ordering faults that a newcomer's first
`./lab up` hits (issue 11). The harness builds, once, a Debian 12 root holding exactly what this
machine kind's image has before a session (`image.py`), then runs each rehearsal or dev sandbox in a
throw-away copy of it with its own mount, PID, UTS, IPC and network namespaces (`sandbox.py`,
`network.py`), so the lab inside never meets the host's lab. `rehearse.py` is the CI scenario,
`cli.py` the command line (`.ci/rehearse`). Standard library only: it runs before any `.venv` exists,
with Debian's own python3.
"""
