"""The rehearsal harness's pure parts (tools/rehearsal): what it parses, allocates and renders.

The harness itself (namespaces, overlay, veth, nftables) is proven by running it: `.ci/run` is one
rehearsal. These tests pin the decisions that would otherwise fail silently: a recap misread as
changed=0, two sandboxes on one subnet, a caller's venv leaking into the newcomer's environment.
"""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

import pytest

from tools.rehearsal import cli, image, network, rehearse, sandbox
from tools.rehearsal.common import RehearsalError

HERE = Path(image.__file__).resolve().parent


def test_recap_sums_changed_and_failed_over_hosts() -> None:
    line = "ansible site.yml: done in 612s (localhost ok=201 changed=143 failed=0; web ok=3 changed=2 failed=1)"
    assert rehearse.parse_recap(line) == (145, 1)
    assert rehearse.parse_recap("ansible site.yml: FAILED in 80s (localhost ok=10 changed=0 failed=1)") == (0, 1)


@pytest.mark.parametrize("line", ["changed=0 failed=0", "ansible site.yml: done in 3s (no host ran)", ""])
def test_recap_absent_is_none_not_zero(line: str) -> None:
    # A missing recap must never read as an idempotent second run.
    assert rehearse.parse_recap(line) is None


def test_failure_lines_name_the_failing_task() -> None:
    tail = deque(["TASK a", "ok", ("lab: ansible site.yml: failed: task 'postgresql : Check TLS' on localhost: "
                   "server does not support SSL"), "more"], maxlen=60)
    picked = rehearse.failure_lines(tail)
    assert any("postgresql : Check TLS" in ln for ln in picked)
    assert "ok" not in picked


def test_pytest_closing_line_is_recognised() -> None:
    assert rehearse.PYTEST_LAST_RE.match("=========== 812 passed, 3 skipped in 701.25s (0:11:41) ===========")
    assert rehearse.PYTEST_LAST_RE.match("==== 2 failed, 810 passed in 700.00s ====")
    assert not rehearse.PYTEST_LAST_RE.match("==== test session starts ====")


def test_subnets_are_disjoint_slash30s() -> None:
    assert network.addresses(1) == ("10.231.1.1", "10.231.1.2", "10.231.1.0/30")
    nets = {network.addresses(i)[2] for i in range(1, network.MAX_INDEX + 1)}
    assert len(nets) == network.MAX_INDEX
    with pytest.raises(ValueError):
        network.addresses(0)
    with pytest.raises(ValueError):
        network.addresses(network.MAX_INDEX + 1)


def test_free_index_takes_the_lowest_unused_and_fails_when_full() -> None:
    assert network.free_index({1, 2, 4}) == 3
    assert network.free_index(set()) == 1
    with pytest.raises(RehearsalError):
        network.free_index(set(range(1, network.MAX_INDEX + 1)))


def test_ruleset_masquerades_only_its_subnet_and_shields_the_host() -> None:
    rules = network.ruleset(7)
    assert "table ip seclab_sbx_7" in rules
    assert 'ip saddr 10.231.7.0/30 oifname != "sbx7" masquerade' in rules
    assert 'iifname "sbx7" reject' in rules  # the host's own lab is unreachable from the sandbox
    assert 'iifname "sbx7" oifname "sbx*" reject' in rules
    assert network.TABLE_RE.findall(rules) == ["7"]


def test_sandbox_env_drops_the_callers_venv_and_lab_settings() -> None:
    host = {"PATH": "/work/wt/x/.venv/bin:/root/.pyenv/shims:/usr/bin", "VIRTUAL_ENV": "/work/wt/x/.venv",
            "PYTHONPATH": "/work/wt/x", "SECLAB_REQUIRE_LAB": "1", "PWD": "/work", "HOME": "/home/u",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt", "CI": "true"}
    env = sandbox.sandbox_env(host)
    assert env["PATH"] == "/root/.pyenv/shims:/usr/bin"
    assert "VIRTUAL_ENV" not in env and "PYTHONPATH" not in env and "PWD" not in env
    assert "SECLAB_REQUIRE_LAB" not in env
    assert env["HOME"] == "/root" and env["PIP_CERT"] == host["PIP_CERT"] and env["CI"] == "true"
    assert env["DEBIAN_FRONTEND"] == "noninteractive"


def test_bind_spec(tmp_path: Path) -> None:
    b = sandbox.Bind.parse(f"{tmp_path}:ro")
    assert (b.src, b.dst, b.ro) == (str(tmp_path), str(tmp_path), True)
    b = sandbox.Bind.parse(f"{tmp_path}:/mnt/x")
    assert (b.dst, b.ro) == ("/mnt/x", False)
    with pytest.raises(RehearsalError):
        sandbox.Bind.parse(f"{tmp_path}:relative")
    with pytest.raises(RehearsalError):
        sandbox.Bind.parse(str(tmp_path / "missing"))


def test_sandbox_names_are_hostname_safe() -> None:
    assert sandbox.NAME_RE.match("rehearsal-20260101-120000")
    for bad in ("", "Upper", "a/b", "-x", "x" * 41, "a b"):
        assert not sandbox.NAME_RE.match(bad)


def test_image_package_list_is_the_images() -> None:
    pkgs = image.packages()
    assert len(pkgs) == len(set(pkgs))
    # What the issue is about: the image's PostgreSQL 15 (cluster created, not running), its JDK, Maven.
    for name in ("postgresql-15", "openjdk-17-jdk-headless", "maven", "git", "curl", "cmake", "ninja-build", "tini"):
        assert name in pkgs
    # NodeSource's Node 20 is bind-mounted from the host; Debian's nodejs (18) must not shadow it.
    assert "nodejs" not in pkgs and not any(p.startswith("google-cloud-cli") for p in pkgs)
    # Supervisor and the lab's services are the lab's job, not the image's.
    for name in ("supervisor", "redis-server", "nginx"):
        assert name not in pkgs


def test_base_key_follows_the_package_list() -> None:
    pkgs = image.packages()
    assert image.base_key(pkgs) == image.base_key(list(reversed(pkgs)))
    assert image.base_key(pkgs) != image.base_key(pkgs + ["hello"])


@pytest.mark.parametrize("script", ["ns-init.sh", "smoke.sh"])
def test_shell_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(HERE / script)], check=False).returncode == 0


def test_cli_runs_the_rehearsal_by_default() -> None:
    opts = cli.parser().parse_args(["run"])
    assert (opts.command, opts.tests, opts.keep) == ("run", "test", False)
    assert cli.parser().parse_args(["run", "--smoke"]).tests == "smoke"
    assert cli.parser().parse_args(["run", "--no-test"]).tests == "none"
    e = cli.parser().parse_args(["sandbox", "exec", "me", "--", "./lab", "up"])
    assert (e.name, cli.exec_command(e.cmd)) == ("me", ["./lab", "up"])
    assert cli.exec_command(["--", "ls", "--", "-l"]) == ["ls", "--", "-l"]


class _FakeSandbox:
    """Stands in for a running sandbox: the orchestration is tested, not the namespaces."""

    name = "rehearsal-test"
    mode = "overlay"

    def __init__(self, root: Path) -> None:
        self.root = root

    def alive(self) -> bool:
        return True

    def subnet(self) -> str:
        return "10.231.9.0/30"

    def path_inside(self, path: str) -> Path:
        return self.root / path.lstrip("/")


def _scripted_rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs: list[tuple[int, list[str]]],
                        tests: str = "test", extra: tuple[str, ...] = ()) -> tuple[int, list[list[str]], list[str]]:
    """Run rehearse() with each step answering the next scripted (rc, lines); returns (exit, argvs, destroyed)."""
    fake = _FakeSandbox(tmp_path / "root")
    (fake.root / "var/log/seclab").mkdir(parents=True)
    (fake.root / "tmp").mkdir()
    (fake.root / "var/log/seclab/app.log").write_text("app log\n")
    argvs: list[list[str]] = []
    destroyed: list[str] = []

    def fake_step(sb: object, argv: list[str], log: Path, timeout_s: float, cwd: str,
                  show_task: bool = False) -> rehearse.StepResult:
        argvs.append(argv)
        rc, lines = outputs.pop(0)
        res = rehearse.StepResult(rc=rc, timed_out=False)
        for line in lines:
            res.tail.append(line)
            if rehearse.RECAP_RE.search(line):
                res.recap = line
            if rehearse.PYTEST_LAST_RE.match(line):
                res.pytest_last = line
        return res

    monkeypatch.setattr(rehearse, "require_root", lambda: None)
    monkeypatch.setattr(rehearse.image, "ensure_base", lambda rebuild=False: (tmp_path / "base-x", False))
    monkeypatch.setattr(rehearse.sandbox, "create", lambda name, base: fake)
    monkeypatch.setattr(rehearse.sandbox, "destroy", lambda name, quiet=False: destroyed.append(name))
    monkeypatch.setattr(rehearse, "clone_into", lambda sb, repo, dest: "main@abc1234")
    monkeypatch.setattr(rehearse, "step", fake_step)
    opts = cli.parser().parse_args(["run", "--logs", str(tmp_path / "logs"), *extra]
                                   + (["--smoke"] if tests == "smoke" else []))
    return rehearse.rehearse(opts), argvs, destroyed


UP1 = "ansible site: done in 500s (localhost ok=257 changed=118 failed=0)"
UP2 = "ansible site: done in 90s (localhost ok=228 changed=0 failed=0)"


def test_rehearsal_passes_through_its_phases_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    last = "===== 880 passed, 2 xfailed in 800.00s ====="
    rc, argvs, destroyed = _scripted_rehearsal(tmp_path, monkeypatch, [(0, [UP1]), (0, [UP2]), (0, [last])])
    assert rc == 0
    assert argvs == [["./lab", "up"], ["./lab", "up"], ["./lab", "test"]]
    assert destroyed == ["rehearsal-test"]
    out = capsys.readouterr().out.strip().splitlines()
    assert any(ln.startswith("rehearse: PASSED") and "changed=118" in ln and "changed=0" in ln for ln in out)
    assert out[-1] == last  # the test runner's closing line stays the last line CI reads
    assert not (tmp_path / "logs" / "var-log-seclab").exists()  # lab logs are copied out on failure only


def test_second_up_that_changes_something_fails_and_keeps_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    drifted = "ansible site: done in 90s (localhost ok=228 changed=2 failed=0)"
    rc, argvs, destroyed = _scripted_rehearsal(
        tmp_path, monkeypatch, [(0, [UP1]), (0, [drifted, "changed: redis : Render the config"])])
    assert rc == 1
    assert argvs == [["./lab", "up"], ["./lab", "up"]]  # no tests after a failed phase
    out = capsys.readouterr().out
    assert "not idempotent" in out and "changed: redis : Render the config" in out
    assert (tmp_path / "logs" / "var-log-seclab" / "app.log").read_text() == "app log\n"
    assert destroyed == ["rehearsal-test"]  # torn down on failure too


def test_failed_first_up_names_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    fail = ("lab: ansible site: failed: task 'process : Stop when redis-exporter did not start' on localhost: "
            "redis-exporter is FATAL")
    rc, argvs, _ = _scripted_rehearsal(tmp_path, monkeypatch, [(1, ["TASK x", fail])])
    assert rc == 1 and len(argvs) == 1
    out = capsys.readouterr().out
    assert "first ./lab up exited 1" in out and fail in out


def test_smoke_runs_the_smoke_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, argvs, _ = _scripted_rehearsal(tmp_path, monkeypatch, [(0, [UP1]), (0, [UP2]), (0, ["smoke: passed"])],
                                       tests="smoke")
    assert rc == 0 and argvs[-1] == ["bash", "/tmp/rehearsal-smoke.sh"]
    assert (tmp_path / "root/tmp/rehearsal-smoke.sh").read_text() == (HERE / "smoke.sh").read_text()


def test_deadline_cuts_phase_timeouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts: list[float] = []
    real_lab_up = rehearse.lab_up

    def spy(sb: object, log: Path, timeout_min: float, note: list[str]) -> object:
        timeouts.append(timeout_min)
        return real_lab_up(sb, log, timeout_min, note)  # type: ignore[arg-type]

    monkeypatch.setattr(rehearse, "lab_up", spy)
    rc, _, _ = _scripted_rehearsal(tmp_path, monkeypatch, [(0, [UP1]), (0, [UP2]), (0, ["ok"])],
                                   extra=("--deadline", "10"))
    assert rc == 0
    # 10 minutes minus the 3 kept back for teardown: each ./lab up gets at most 7, not the default 40.
    assert timeouts and all(6.5 < t <= 10 - rehearse.DEADLINE_MARGIN_MIN for t in timeouts)

