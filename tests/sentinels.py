"""A Sentinel group for the tests: 1 primary + 1 replica + 3 sentinels, on free loopback ports.

Every process is a ``RedisServer`` (the binary the tests choose, run with
``--sentinel`` for the sentinels), in a temp dir of its own, stopped by PID
at exit. Sentinels declare a primary down after 1,000 ms. Started once per
test process (``group()``); tests that fail a primary over wait first until
the group can (``ready``), and leave it serving.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from redis import Redis

from cache_sessions.embedded import RedisServer
from tests.servers import RECOMMENDED

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
# Also how soon a sentinel may start another failover of the same primary (twice this).
FAILOVER_TIMEOUT_MS = 2000
DATA = {**RECOMMENDED, "repl-diskless-sync-delay": "0"}  # else a replica's first sync waits 5 s


class SentinelGroup:
    def __init__(self) -> None:
        primary = RedisServer(config=DATA).start()
        replica = RedisServer(config=DATA).start()
        follow(replica, primary)
        self.data = [primary, replica]
        monitor = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
        ]
        self.sentinels = [RedisServer(sentinel=monitor).start() for _ in range(3)]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """What ``OPTIONS["SENTINELS"]`` lists."""
        return [("127.0.0.1", sentinel.port) for sentinel in self.sentinels]

    def location(self, db: int) -> str:
        return f"redis://{SERVICE}/{db}"

    def sentinel(self, index: int = 0) -> Redis:
        return Redis(port=self.sentinels[index].port, decode_responses=True, socket_timeout=2)

    def primary(self) -> RedisServer:
        """The data node the sentinels name as the primary."""
        _, port = self.sentinel().sentinel_get_master_addr_by_name(SERVICE)
        return next(server for server in self.data if server.port == int(port))

    def replica(self) -> RedisServer:
        primary = self.primary()
        return next(server for server in self.data if server is not primary)

    def role(self, server: RedisServer) -> str:
        try:
            return str(Redis(port=server.port, socket_timeout=1).role()[0].decode())
        except Exception:
            return "down"

    def ready(self, timeout: float = 30.0) -> None:
        """Wait until a failover can happen: every sentinel knows the other two and an
        up-to-date replica, the replica is in sync, and no failover is under way."""
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Sentinel group is not ready after {timeout} s: {self.state()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            primary, replica = self.primary(), self.replica()
            if self.role(primary) != "master" or self.role(replica) != "slave":
                return False
            info = Redis(port=replica.port).info("replication")
            if info["master_link_status"] != "up" or info["master_port"] != primary.port:
                return False
            for index in range(len(self.sentinels)):
                sentinel = self.sentinel(index)
                master = sentinel.sentinel_master(SERVICE)
                if master["port"] != primary.port or master["num-other-sentinels"] != 2:
                    return False
                if master["is_sdown"] or "failover_in_progress" in master["flags"]:
                    return False
                replicas = sentinel.sentinel_slaves(SERVICE)
                if not any(r["port"] == replica.port and r["flags"] == "slave" for r in replicas):
                    return False
            return True
        except Exception:
            return False

    def state(self) -> dict[str, Any]:
        """What the group looks like, for a failure message."""
        described: dict[str, Any] = {f"data {s.port}": self.role(s) for s in self.data}
        for index, sentinel in enumerate(self.sentinels):
            try:
                master = self.sentinel(index).sentinel_master(SERVICE)
                described[f"sentinel {sentinel.port}"] = (master["port"], master["flags"])
            except Exception as exc:
                described[f"sentinel {sentinel.port}"] = repr(exc)
        return described

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data]:
            server.stop()


def follow(replica: RedisServer, primary: RedisServer) -> None:
    """Make ``replica`` a replica of ``primary`` (REPLICAOF after the start: Redis 6.2 cannot
    take ``--replicaof "host port"`` on its command line)."""
    Redis(port=replica.port).replicaof("127.0.0.1", primary.port)


def restart_as_replica(server: RedisServer, primary: RedisServer) -> None:
    """Start a killed data node again, as a replica of ``primary``."""
    server.start()
    follow(server, primary)


@functools.cache
def group() -> SentinelGroup:
    return SentinelGroup()
