"""Wiring between the API and the worker that needs no services: settings, DLQ categories, the collector."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.core.config import Settings, load_settings
from app.worker.dlq import categorize


def test_gateway_secret_paths_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.worker.runtime import gateway_secrets

    env = tmp_path / "app.env"
    env.write_text("SECLAB_LLM_CANARY_FILE=/s/llm_canary\nSECLAB_LLAMA_API_KEY_FILE=/s/llama_api_key\n"
                   "SECLAB_PII_KEY_FILE=/s/pii_key\n")
    monkeypatch.setenv("SECLAB_OPENAI_API_KEY_FILE", "/s/openai_api_key")  # the environment wins
    g = gateway_secrets(load_settings(env))
    assert (g.canary_file, g.llama_api_key_file, g.pii_key_file, g.openai_api_key_file) == (
        "/s/llm_canary", "/s/llama_api_key", "/s/pii_key", "/s/openai_api_key")
    monkeypatch.delenv("SECLAB_OPENAI_API_KEY_FILE")
    with pytest.raises(RuntimeError, match="SECLAB_LLM_CANARY_FILE"):
        gateway_secrets(Settings(llm_canary_file=None))


def test_an_unreachable_database_is_retried_not_dead_lettered_at_once() -> None:
    from app.crud.worker import DatabaseUnavailable

    assert categorize(DatabaseUnavailable("ConnectionRefusedError")) == "database"
    assert categorize(ConnectionRefusedError()) == "unknown"  # why the store wraps it


class _FakeRedis:
    def __init__(self, depth: int) -> None:
        self.depth = depth

    def xlen(self, key: str) -> int:
        assert key == "seclab:dlq"
        return self.depth


def test_dlq_collector_is_registered_once_and_follows_the_newest_app() -> None:
    from app.main import register_dlq_collector

    first = register_dlq_collector(_FakeRedis(3))
    assert REGISTRY.get_sample_value("seclab_dlq_depth") == 3.0
    second = register_dlq_collector(_FakeRedis(7))  # a second app in the same process: no duplicate error
    assert second is first
    assert REGISTRY.get_sample_value("seclab_dlq_depth") == 7.0


def test_dlq_depth_is_nan_not_zero_when_redis_is_down() -> None:
    from app.main import register_dlq_collector

    class Down:
        def xlen(self, key: str) -> Any:
            raise ConnectionError("down")

    register_dlq_collector(Down())
    value = REGISTRY.get_sample_value("seclab_dlq_depth")
    assert value is not None and math.isnan(value)  # unknown, not zero
