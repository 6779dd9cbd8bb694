"""Timing of the lab PKI (run by hand: .venv/bin/python tests/pki/bench_pki.py); measured, not asserted."""

import statistics
import tempfile
import time

from labdef import load
from pki.ca import ensure, rotate, status
from pki.plan import build_plan

plan = build_plan(load())
a, b, c, s = [], [], [], []
for _ in range(5):
    d = tempfile.mkdtemp()
    t = time.perf_counter()
    ensure(plan, d)
    a.append(time.perf_counter() - t)
    t = time.perf_counter()
    r = ensure(plan, d)
    b.append(time.perf_counter() - t)
    assert not r.changed
    t = time.perf_counter()
    rotate(plan, d)
    c.append(time.perf_counter() - t)
    t = time.perf_counter()
    status(plan, d)
    s.append(time.perf_counter() - t)
f = lambda x: f"median {statistics.median(x) * 1000:.0f} ms"
print("fresh ensure (2 CAs + 13 leaves):", f(a))
print("no-op ensure:", f(b))
print("rotate all 13 leaves:", f(c))
print("status (15 certs, verify):", f(s))
