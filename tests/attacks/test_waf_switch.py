"""The detection-only switch: renders DetectionOnly, reloads, and ALWAYS restores blocking (try/finally)."""

from __future__ import annotations

from pathlib import Path

import pytest

import labdef
from seclab.commands import attack as attack_cmd
from waf_rules import render


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, Path, list[str]]:
    lab = labdef.load(Path(__file__).resolve().parents[2] / "lab.yml")
    conf = tmp_path / "waf"
    render.render(lab, conf, "/var/log/seclab/modsec_audit.json", mode_override="blocking",
                  tmp_dir=str(Path(lab.paths.data) / "waf"))
    (conf / "main.conf").write_text((conf / "main.conf").read_text() + "# deployed by ansible\n")
    reloads: list[str] = []
    monkeypatch.setattr(attack_cmd, "reload_edge",
                        lambda nginx_conf=None: reloads.append(attack_cmd.engine_line(conf)))
    return lab, conf, reloads


def test_switch_and_restore_even_on_error(deployed: tuple[object, Path, list[str]]) -> None:
    lab, conf, reloads = deployed
    before = {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError), attack_cmd.edge_waf_mode(lab, "detection-only", conf_dir=conf):
        assert attack_cmd.engine_line(conf) == "SecRuleEngine DetectionOnly"
        raise RuntimeError("suite crashed")
    assert reloads == ["SecRuleEngine DetectionOnly", "SecRuleEngine On"]
    assert {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()} == before  # byte-for-byte, no drift


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_restore_on_termination_and_interrupt(deployed: tuple[object, Path, list[str]], how: str) -> None:
    """`timeout`/kill (SIGTERM) and Ctrl-C both end the run with blocking restored."""
    import os
    import signal

    lab, conf, reloads = deployed
    before = signal.getsignal(signal.SIGTERM)
    expected = SystemExit if how == "sigterm" else KeyboardInterrupt
    with pytest.raises(expected), attack_cmd.edge_waf_mode(lab, "detection-only", conf_dir=conf):
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt
    assert reloads == ["SecRuleEngine DetectionOnly", "SecRuleEngine On"]
    assert attack_cmd.engine_line(conf) == "SecRuleEngine On"
    assert signal.getsignal(signal.SIGTERM) == before  # handlers put back


def test_restore_renders_blocking_when_snapshot_was_not(deployed: tuple[object, Path, list[str]]) -> None:
    lab, conf, _ = deployed
    render.render(lab, conf, "/x.json", mode_override="detection-only")
    with attack_cmd.edge_waf_mode(lab, "detection-only", conf_dir=conf):
        pass
    assert attack_cmd.engine_line(conf) == "SecRuleEngine On"


def test_blocking_is_a_no_op(deployed: tuple[object, Path, list[str]]) -> None:
    lab, conf, reloads = deployed
    with attack_cmd.edge_waf_mode(lab, "blocking", conf_dir=conf):
        pass
    assert reloads == []


def test_missing_deployment_is_refused(tmp_path: Path) -> None:
    lab = labdef.load(Path(__file__).resolve().parents[2] / "lab.yml")
    with pytest.raises(Exception, match="no deployed WAF"), attack_cmd.edge_waf_mode(
        lab, "detection-only", conf_dir=tmp_path
    ):
        pass
