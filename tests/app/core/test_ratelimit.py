from __future__ import annotations

from redis.asyncio import Redis

from app.core.config import Settings
from app.core.ratelimit import RateLimiter, client_address, window_key

S = Settings(trusted_proxies="127.0.0.1,10.0.0.0/8")


def test_window_key_changes_per_window_and_hides_identity() -> None:
    k1, r1 = window_key("user", "alice", 120.0)
    k2, _ = window_key("user", "alice", 179.9)
    k3, _ = window_key("user", "alice", 180.0)
    assert k1 == k2 != k3
    assert "alice" not in k1
    assert r1 == 60
    assert window_key("user", "alice", 170.2)[1] == 10
    assert window_key("user", "bob", 120.0)[0] != k1
    assert window_key("addr", "alice", 120.0)[0] != k1


def test_xff_ignored_from_untrusted_peer() -> None:
    assert client_address("203.0.113.5", "1.2.3.4", S.is_trusted_proxy) == "203.0.113.5"


def test_xff_used_from_trusted_proxy() -> None:
    assert client_address("127.0.0.1", "198.51.100.7", S.is_trusted_proxy) == "198.51.100.7"


def test_spoofed_left_entries_do_not_choose_the_bucket() -> None:
    # The client sent "X-Forwarded-For: 6.6.6.6"; our proxy appended the real peer.
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7", S.is_trusted_proxy) == "198.51.100.7"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", S.is_trusted_proxy) == "198.51.100.7"


def test_garbage_xff_falls_back_to_peer() -> None:
    # Garbage left of the nearest untrusted hop is client-controlled and never read.
    assert client_address("127.0.0.1", "<script>, 1.2.3.4", S.is_trusted_proxy) == "1.2.3.4"
    # Garbage where our proxy should have written an address: do not trust the header at all.
    assert client_address("127.0.0.1", "1.2.3.4, <script>", S.is_trusted_proxy) == "127.0.0.1"
    assert client_address(None, None, S.is_trusted_proxy) == "unknown"


async def test_fail_open_when_redis_unreachable() -> None:
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        d = await RateLimiter(redis).hit("user", "alice", 1)
    finally:
        await redis.aclose()
    assert d.allowed and not d.checked
