"""Property-based fuzzing of the whole API from its own OpenAPI schema: zero 5xx, responses conform.

The app runs under uvicorn in a thread with its own event loop (real HTTP, real PostgreSQL and
Redis), because schemathesis drives requests synchronously. Rate limits are raised for this app
only, so the fuzzer reaches the handlers instead of the 429 path. Lab-admin routes are fuzzed with
a non-admin token (403): fuzzing tenant creation as an admin would create stray tenants.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.core.config import Settings, load_settings
from app.main import create_app
from tests.app.conftest import _env_file, stand_in_screener
from tests.app.test_limits_and_readiness import with_limits
from tests.conftest import AUDIENCE, ISSUER, FakeIssuer, claims_for, mint

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openapi() -> dict[str, Any]:
    return create_app().openapi()  # no I/O: settings load in the lifespan


schema = schemathesis.openapi.from_dict(_openapi())


@pytest.fixture(scope="module")
def server(signing_key: Any) -> Iterator[tuple[str, str]]:
    base: Settings = load_settings(_env_file())
    s = base.model_copy(update={"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": None,
                                "log_level": "WARNING"})
    from app.db.admin import sync

    asyncio.run(sync(s))
    lab = with_limits(s.load_lab(), 1_000_000, 1_000_000)
    app = create_app(settings=s, lab=lab, http_client=FakeIssuer([signing_key]).client(), screener=stand_in_screener)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    token = mint(signing_key, claims_for(f"fuzz-{port}", ["user", "tenant-admin"], "acme", lifetime=3600))
    yield f"http://127.0.0.1:{port}", token
    srv.should_exit = True
    t.join(timeout=10)


@schema.parametrize()
@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_5xx(case: Any, server: tuple[str, str]) -> None:
    base_url, token = server
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    # positive_data_acceptance is excluded: an opaque cursor that matches its pattern may still be
    # invalid (422 by design), and limits.page_size_max comes from lab.yml, not from the schema.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
