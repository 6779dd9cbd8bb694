"""Redis failover time: from killing the primary to the first successful write through the app's client.

    sudo .venv/bin/python -m tools.redis_failover --trials 5

As root on a provisioned lab (it kills the lab's Redis primary `--trials` times). Each trial: the
current primary is killed (SIGKILL through supervisord, then held down, so supervisord's autorestart
does not bring it back before Sentinel notices); the app's own Redis client (`app.core.redis`, the
Sentinel-managed pool the API uses, with the API's ACL user and certificate) retries a SET every
`--probe-ms`; the time to the first SET that succeeds on the promoted replica is the failover time.
Then the killed node is started again; Sentinel makes it a replica of the new primary; the next trial
starts once it is connected. At the end the original roles are restored (`SENTINEL FAILOVER`), so the
lab is left as `./lab up` made it. Prints one JSON line.

`RedisHA` is also what tests/app/test_redis_failover.py drives the lab with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

import labdef
from labdef import LabDefinition
from pki.services import PROGRAMS

MASTER_NAME_DEFAULT = "seclab"


class RedisHA:
    """The lab's two data nodes and three sentinels, driven as root (supervisord, seclab_sentinel).

    Talks to the sentinels and the data nodes as `seclab_sentinel` over mTLS with the redis-peer
    certificate, as the redis role does (its password is root-only)."""

    def __init__(self, lab: LabDefinition, master_name: str = MASTER_NAME_DEFAULT) -> None:
        self.lab = lab
        self.master_name = master_name
        pki = Path(lab.paths.pki)
        self.password = (Path(lab.paths.secrets) / "redis_sentinel_password").read_text(encoding="utf-8").strip()
        self.tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(pki / "ca" / "ca-bundle.crt"),
                    "ssl_certfile": str(pki / "certs" / "redis-peer.chain.crt"),
                    "ssl_keyfile": str(pki / "private" / "redis-peer.key")}
        self.programs = {lab.ports.redis: PROGRAMS["redis"], lab.ports.redis_replica: PROGRAMS["redis-replica"]}

    def _client(self, port: int, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, username="seclab_sentinel", password=self.password,
                           socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True, **self.tls)

    def sentinel(self, *args: str) -> Any:
        """A SENTINEL command on the first sentinel that answers."""
        last: Exception | None = None
        for port in self.lab.ports.redis_sentinels():
            c = self._client(port)
            try:
                return c.execute_command("SENTINEL", *args)
            except (redis.RedisError, OSError) as exc:
                last = exc
            finally:
                c.close()
        raise RuntimeError(f"no sentinel answered SENTINEL {' '.join(args)}: {last}")

    def primary(self) -> int:
        """Port of the primary the sentinels name now."""
        _host, port = self.sentinel("GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(port)

    def other(self, port: int) -> int:
        return next(p for p in self.programs if p != port)

    def role(self, port: int) -> list[Any] | None:
        """ROLE of a data node, None when it does not answer."""
        c = self._client(port)
        try:
            return list(c.execute_command("ROLE"))
        except (redis.RedisError, OSError):
            return None
        finally:
            c.close()

    def master_state(self) -> dict[str, str]:
        flat = self.sentinel("MASTER", self.master_name)
        if isinstance(flat, dict):
            return {str(k): str(v) for k, v in flat.items()}
        return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}

    def healthy(self) -> bool:
        """Both nodes in place: the primary has its replica connected, every sentinel sees the others."""
        try:
            primary = self.primary()
            st = self.master_state()
        except RuntimeError:
            return False
        replica = self.role(self.other(primary))
        return (int(st.get("num-slaves", 0)) == 1 and int(st.get("num-other-sentinels", 0)) == 2
                and "s_down" not in st.get("flags", "") and "o_down" not in st.get("flags", "")
                and (self.role(primary) or [None])[0] == "master"
                and replica is not None and replica[0] == "slave" and int(replica[2]) == primary
                and replica[3] == "connected"
                and all(self._replica_seen_up(p) for p in self.lab.ports.redis_sentinels()))

    def _replica_seen_up(self, sentinel_port: int) -> bool:
        """This sentinel sees the replica up, reporting role slave for over an INFO period (10 s).

        Why the settle time: a sentinel that has not re-read a rejoined node's INFO since it was a
        primary "corrects" it back to replica the moment a manual failover promotes it (seen here:
        -failover-abort-slave-timeout), so `restore` waits until every sentinel's view is fresh."""
        c = self._client(sentinel_port)
        try:
            replicas = c.execute_command("SENTINEL", "REPLICAS", self.master_name)
        except (redis.RedisError, OSError):
            return False
        finally:
            c.close()
        for r in replicas:
            d = r if isinstance(r, dict) else {str(r[i]): str(r[i + 1]) for i in range(0, len(r), 2)}
            flags = str(d.get("flags", ""))
            if ("s_down" not in flags and "disconnected" not in flags and d.get("role-reported") == "slave"
                    and d.get("master-link-status") == "ok" and int(d.get("role-reported-time", 0)) > 11000):
                return True
        return False

    def wait(self, what: str, cond: Any, timeout_s: float, every_s: float = 0.25) -> float:
        """Seconds until `cond()` holds; RuntimeError naming `what` after `timeout_s`."""
        t0 = time.monotonic()
        while True:
            try:
                if cond():
                    return time.monotonic() - t0
            except (RuntimeError, redis.RedisError, OSError):
                pass
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(every_s)

    def _supervisorctl(self, *args: str) -> str:
        p = subprocess.run(["supervisorctl", *args], capture_output=True, text=True, check=False, timeout=60)
        return p.stdout + p.stderr

    def kill(self, port: int) -> None:
        """A crash of the node (SIGKILL: no shutdown save), held down until `start`."""
        prog = self.programs[port]
        self._supervisorctl("signal", "KILL", prog)
        self._supervisorctl("stop", prog)  # or supervisord's autorestart brings it back before Sentinel acts

    def start(self, port: int) -> None:
        self._supervisorctl("start", self.programs[port])

    def is_running(self, port: int) -> bool:
        return " RUNNING " in self._supervisorctl("status", self.programs[port])

    def restore(self, timeout_s: float = 120.0) -> None:
        """Back to the roles `./lab up` made: both nodes running, the lab.yml primary primary, healthy."""
        for port in self.programs:
            if not self.is_running(port):
                self.start(port)
        for _attempt in range(3):
            self.wait("a healthy pair (replica connected, sentinels agree)", self.healthy, timeout_s)
            if self.primary() == self.lab.ports.redis:
                break
            self.sentinel("FAILOVER", self.master_name)
            try:
                self.wait(f"{self.lab.ports.redis} to be primary again",
                          lambda: self.primary() == self.lab.ports.redis, 40)
            except RuntimeError:
                continue  # aborted (e.g. -failover-abort-slave-timeout): settle and try again
        if self.primary() != self.lab.ports.redis:
            raise RuntimeError(f"could not make {self.lab.ports.redis} primary again")
        self.wait("a healthy pair after the switch back", self.healthy, timeout_s)


async def _first_write(client: Any, key: str, probe_s: float, timeout_s: float) -> tuple[float, int]:
    """Seconds from now to the first SET that succeeds, and the number of failed attempts."""
    t0 = time.monotonic()
    failures = 0
    while True:
        try:
            await client.set(key, str(time.time()), ex=600)
            return time.monotonic() - t0, failures
        except (redis.RedisError, OSError):
            failures += 1
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"no successful write within {timeout_s} s")
        await asyncio.sleep(probe_s)


async def measure(trials: int, probe_ms: int, timeout_s: float) -> dict[str, Any]:
    from app.core.config import load_settings
    from app.main import redis_client

    lab = labdef.load()
    settings = load_settings(Path(lab.paths.etc) / "app.env")
    ha = RedisHA(lab, settings.redis_master_name)
    ha.restore()
    client = redis_client(settings)  # the API's client: Sentinel-managed pool, 1 s timeouts
    key = "seclab:bench:failover"
    results: list[dict[str, Any]] = []
    try:
        await client.set(key, "warm", ex=600)
        for n in range(trials):
            old = ha.primary()
            ha.kill(old)
            seconds, failures = await _first_write(client, key, probe_ms / 1000, timeout_s)
            new = ha.primary()
            results.append({"trial": n + 1, "killed": old, "promoted": new, "kill_to_first_write_s": round(seconds, 3),
                            "failed_attempts": failures})
            ha.start(old)
            rejoin = ha.wait("the killed node to rejoin as a replica", ha.healthy, timeout_s)
            results[-1]["rejoin_s"] = round(rejoin, 1)
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # partial results survive a failure
    finally:
        await client.aclose()
        ha.restore()
    times = [r["kill_to_first_write_s"] for r in results]
    return {"metric": "redis_failover_kill_to_first_write_s", "trials": results,
            "min_s": min(times), "median_s": round(statistics.median(times), 3), "max_s": max(times),
            "mean_s": round(statistics.mean(times), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--probe-ms", type=int, default=50, help="pause between write attempts")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a trial may take")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it stops and starts the lab's Redis nodes")
    print(json.dumps(asyncio.run(measure(args.trials, args.probe_ms, args.timeout))))


if __name__ == "__main__":
    main()
