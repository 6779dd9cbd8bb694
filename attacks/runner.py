"""Suite registry, the run context (target, HTTP client, tokens, shared fixtures) and the run loop.

Black-box by construction: this package speaks HTTP to the target (httpx) and reads the lab's log
files; it never imports the app. Tokens come from the lab's identity provider with the operator's
generated passwords (labdef.tokens), exactly as `lab token USER` gets them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from attacks.classify import Observation, classify
from attacks.evidence import Evidence, LogPaths, ResponseFacts, facts_from
from attacks.model import AttackCase, Expectation, Layer, Report, Result

SUITES: tuple[str, ...] = (
    "injection", "xss", "traversal", "command", "ssrf", "jwt", "bola", "mass_assignment", "bodies", "llm",
    "bruteforce", "headers", "sqlmap",
)
"""Run order matters: the bounded rate-limit and lockout cases exhaust per-user and per-address budgets,
and the token-endpoint address limit is spent by the header spoofing case, so they run last."""

CaseFn = Callable[["Context"], Awaitable[Observation]]


@dataclass(frozen=True)
class Registered:
    case: AttackCase
    fn: CaseFn
    requires_edge: bool = False


_REGISTRY: dict[str, list[Registered]] = {}


def attack(
    id: str, title: str, refs: list[str], layer: Layer, *, suite: str, requires_edge: bool = False,
    tests_limits: bool = False,
) -> Callable[[CaseFn], CaseFn]:
    """Register an async case function under `suite` (decorator; the AttackCase is validated now)."""
    case = AttackCase(id=id, title=title, refs=refs, suite=suite, expected=Expectation(layer=layer),
                      tests_limits=tests_limits)

    def deco(fn: CaseFn) -> CaseFn:
        _REGISTRY.setdefault(suite, []).append(Registered(case, fn, requires_edge))
        return fn

    return deco


def load_suites(names: list[str] | None = None) -> list[Registered]:
    """Import the suite modules (each registers its cases) and return them in run order."""
    chosen = list(SUITES) if not names else names
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; known: {', '.join(SUITES)}")
    out: list[Registered] = []
    for name in chosen:
        importlib.import_module(f"attacks.suites.{name}")
        out.extend(_REGISTRY.get(name, []))
    return out


class Target(BaseModel):
    """Where the attacks go. `through_edge`: the base URL is the lab's edge (WAF, limits, headers)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    verify: str | bool = True
    through_edge: bool = True
    token_url: str
    realm: str = "seclab"
    client_id: str = "seclab-cli"
    edge_mode: str = "blocking"

    @property
    def api(self) -> str:
        return self.base_url.rstrip("/") + "/api/v1"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"


@dataclass
class Context:
    """Shared by every case of a run: the client, tokens, the lab definition, fixtures made once."""

    target: Target
    lab: Any
    evidence: Evidence | None
    token_for: Callable[[str], str]
    client: httpx.AsyncClient = field(init=False)
    options: dict[str, Any] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _fixtures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(
            verify=self.target.verify, timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False,
            headers={"User-Agent": "seclab-attacks/1"},
        )

    async def token(self, user: str, fresh: bool = False) -> str:
        """A real access token of a lab user, fetched off the event loop and reused while it is young
        (access tokens live `identity.access_token_lifetime_s`; renewed at 60% of that)."""
        max_age = 0.6 * float(getattr(getattr(self.lab, "identity", None), "access_token_lifetime_s", 300))
        cached = self._tokens.get(user)
        if fresh or cached is None or time.monotonic() - cached[1] > max_age:
            cached = (await asyncio.to_thread(self.token_for, user), time.monotonic())
            self._tokens[user] = cached
        return cached[0]

    async def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(user)}"}

    async def request(self, method: str, path: str, *, user: str | None = None, **kw: Any) -> tuple[httpx.Response, ResponseFacts]:
        """One request: `path` is relative to the API (`/conversations`), to the base URL (`//healthz`), or absolute."""
        if path.startswith(("http://", "https://")):
            url = path
        elif path.startswith("//"):
            url = self.target.base_url.rstrip("/") + path[1:]
        else:
            url = self.target.api + path
        headers = dict(kw.pop("headers", {}) or {})
        if user is not None:
            headers.update(await self.auth(user))
        t0 = time.monotonic()
        resp = await self.client.request(method, url, headers=headers, **kw)
        return resp, facts(resp, time.monotonic() - t0)

    async def fixture(self, name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if name not in self._fixtures:
            self._fixtures[name] = await make()
        return self._fixtures[name]

    async def conversation(self, user: str, title: str = "attack-suite") -> str:
        """A conversation of `user` (made once per run) to aim at."""

        async def make() -> str:
            r, f = await self.request("POST", "/conversations", user=user, json={"title": title})
            if r.status_code != 201:
                raise RuntimeError(f"could not create a conversation for {user}: {f.status} {f.problem}")
            return str(r.json()["id"])

        return str(await self.fixture(f"conv:{user}", make))

    async def aclose(self) -> None:
        await self.client.aclose()


def body_of(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, UnicodeDecodeError):
        return None


def facts(resp: httpx.Response, elapsed_s: float) -> ResponseFacts:
    return facts_from(resp.request.method, resp.request.url.raw_path.decode("ascii", "replace")[:300],
                      resp.status_code, dict(resp.headers), body_of(resp), elapsed_s)


async def raw_request(target: Target, request_head: str, timeout: float = 10.0) -> ResponseFacts:
    """Send a request line and headers exactly as written (absolute-form URIs, odd Host values) over
    TCP or TLS, and parse the answer: what httpx refuses to send on purpose."""
    parts = urlsplit(target.base_url)
    tls = parts.scheme == "https"
    ssl_ctx: ssl.SSLContext | None = None
    if tls:
        ssl_ctx = ssl.create_default_context(cafile=target.verify if isinstance(target.verify, str) else None)
        if target.verify is False:
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        ssl_ctx.set_alpn_protocols(["http/1.1"])
    port = parts.port or (443 if tls else 80)
    t0 = time.monotonic()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, port, ssl=ssl_ctx, server_hostname=parts.hostname if tls else None),
        timeout)
    try:
        writer.write(request_head.encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    method, _, rest = request_head.partition(" ")
    return facts_from(method, rest.split(" ", 1)[0][:300], status, headers, parsed, time.monotonic() - t0)


def new_uuid() -> str:
    return str(uuid.uuid4())


async def run_cases(ctx: Context, cases: list[Registered], on_result: Callable[[Result], None] | None = None) -> Report:
    """Run the cases one after the other (logs stay in order; evidence lookups stay unambiguous)."""
    results: list[Result] = []
    for reg in cases:
        if reg.requires_edge and not ctx.target.through_edge:
            obs = Observation(error="needs the edge: the target is the app directly (--base-url)")
        else:
            try:
                obs = await reg.fn(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken case must not end the run; it is reported
                obs = Observation(error=f"{type(exc).__name__}: {str(exc)[:300]}")
        result = await asyncio.to_thread(classify, reg.case, obs, ctx.evidence, ctx.target.through_edge)
        results.append(result)
        if on_result:
            on_result(result)
    target = ctx.target.model_dump(include={"base_url", "through_edge", "edge_mode"})
    if ctx.evidence is not None:
        target["log_errors"] = ctx.evidence.log_errors()
    return Report(results=results, target=target)


def write_report(report: Report, path: Any) -> None:
    """`{"results": [{"id", "refs", "outcome", "layer", "evidence", ...}], "target": {...}}`."""
    data = report.model_dump(mode="json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")


__all__ = ["Context", "LogPaths", "Target", "attack", "load_suites", "new_uuid", "run_cases", "write_report"]
