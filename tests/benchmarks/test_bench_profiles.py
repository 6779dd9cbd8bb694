"""py-spy profiles of `lab bench --capacity --profile`: the top five by self-time from a real raw profile,
the processes chosen for profiling, and a failed attach said in words, not an empty table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import profiles
from benchmarks.layers import Proc
from seclab.report import inputs

DATA = Path(__file__).parent / "data"
RAW = (DATA / "pyspy-raw-two-processes.txt").read_text(encoding="utf-8")
"""Captured with py-spy 0.4.3 (`py-spy record -p PID -s -f raw -d 2 -r 50`) from a two-process script: the parent
hashes (hash_work) and both encode/decode JSON (json_work); the child is a multiprocessing fork."""


def test_self_time_is_the_innermost_frame_summed_over_lines_and_processes() -> None:
    counts, total = profiles.self_samples(RAW)
    assert total == 198  # every sample of the file, parent and child
    # hash_work is innermost on two lines (busy.py:5 and :6) of the parent: one function, 3 + 64 samples.
    assert counts["hash_work (busy.py)"] == 67
    # The process frames (`process 123:"..."`) are never counted as functions.
    assert not [f for f in counts if f.startswith("process ")]


def test_top_five_by_self_time_with_shares() -> None:
    top = profiles.top_self(RAW)
    assert [t["function"] for t in top] == [
        "JSONEncoder.iterencode (json/encoder.py)", "hash_work (busy.py)", "JSONDecoder.raw_decode (json/decoder.py)",
        "JSONDecoder.decode (json/decoder.py)", "JSONEncoder.encode (json/encoder.py)"]
    assert [t["samples"] for t in top] == [73, 67, 31, 15, 5]
    assert top[0]["share"] == round(73 / 198, 4)


def test_lines_that_are_not_stacks_are_ignored() -> None:
    counts, total = profiles.self_samples("garbage\n\nf (a.py:1);g (b.py:2) 4\nh (c.py:3) x\n")
    assert (dict(counts), total) == ({"g (b.py)": 4}, 4)


def test_the_topmost_app_and_worker_processes_are_profiled() -> None:
    uv = "/opt/seclab/venv/bin/python /opt/seclab/venv/bin/uvicorn app.main:app --workers 2"
    cel = "/opt/seclab/venv/bin/python /opt/seclab/venv/bin/celery -A app.worker worker --concurrency 2"
    procs = {1: Proc(1, 0, 0, "supervisord", "supervisord", 0),
             10: Proc(10, 1, 1, "uvicorn", uv, 0), 11: Proc(11, 1, 10, "python", "python -c spawn", 0),
             20: Proc(20, 1, 1, "celery", cel, 0), 21: Proc(21, 1, 20, "celery", cel, 0),
             30: Proc(30, 1, 1, "nginx", "nginx: master process", 0)}
    assert profiles.main_pids(procs) == {"app": 10, "worker": 20}


def test_a_refused_attach_says_ptrace_and_root() -> None:
    msg = profiles.explain("Error: Failed to attach to process\nPermission denied (os error 1)\n")
    assert "ptrace" in msg and "root" in msg


def test_a_missing_py_spy_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "pyspy_path", lambda: None)
    rec = profiles.start("app", 10, tmp_path / "p.txt", 5)
    assert rec.finish() == {"pid": 10, "error": "py-spy is not installed (pip install -e '.[dev]' brings it)"}


def test_a_finished_recording_summarises_its_file(tmp_path: Path) -> None:
    out = tmp_path / "cap.40users.app.pyspy.txt"
    # A stand-in for py-spy that writes the captured profile and exits 0 (the real one needs a target).
    script = f"import shutil; shutil.copy({str(DATA / 'pyspy-raw-two-processes.txt')!r}, {str(out)!r})"
    rec = profiles.Recording("app", 10, out, subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE))
    got = rec.finish()
    assert got["samples"] == 198 and got["file"] == out.name and got["top"][1]["function"] == "hash_work (busy.py)"


def test_the_report_shows_the_capacity_runs_top_five(tmp_path: Path) -> None:
    from seclab.report.build import Options, build

    prof = {"users": 40, "app": {"pid": 10, "file": "c.40users.app.pyspy.txt", "samples": 198,
                                 "top": profiles.top_self(RAW)},
            "worker": {"pid": 20, "error": "py-spy could not attach (ptrace refused: run as root)"}}
    run = {"kind": "seclab-bench-capacity", "p95_target_ms": 500, "max_error_rate": 0.01, "min_users": 5,
           "steps": [{"users": 40, "p50_ms": 10, "p95_ms": 900, "p99_ms": 1000, "rps": 5, "errors": 0,
                      "requests": 100, "meets_target": False}],
           "profiles": prof}
    s = inputs.bench_summary([("cap.json", json.loads(json.dumps(run)))])
    assert s["profiles"]["app"]["top"][0]["function"] == "JSONEncoder.iterencode (json/encoder.py)"
    assert "ptrace" in s["profiles"]["worker"]["error"]
    f = tmp_path / "cap.json"
    f.write_text(json.dumps(run))
    build(Options(out=tmp_path / "r", bench=[f], run_compliance=False, run_lynis=False, collect_identity=False))
    html = (tmp_path / "r" / "index.html").read_text()
    assert 'id="profiles"' in html and "hash_work (busy.py)" in html and "36.9 %" in html
    assert "no profile: py-spy could not attach" in html
