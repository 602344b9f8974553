"""A Sentinel group for the tests: 1 primary + 2 replicas + 3 sentinels, on free loopback ports.

Every process is a ``RedisServer`` (the binary the tests choose, run with
``--sentinel`` for the sentinels), in a temp dir of its own, stopped by PID
at exit. The sentinels use README's configuration (quorum 2,
``down-after-milliseconds 1000``, ``failover-timeout 5000``). Two replicas,
because a failover then has a phase that one replica skips: the leading
sentinel has promoted one replica and reconfigures the other (seconds, until
that replica has synced) before it announces the switch itself. Started once
per test process (``group()``); tests that fail a primary over wait first
until the group can (``ready``), and leave it serving.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from redis import Redis

from cache_sessions.testing import RedisServer
from tests.support.servers import RECOMMENDED

SERVICE = "mymaster"
REPLICAS = 2
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
DATA = {**RECOMMENDED, "repl-diskless-sync-delay": "0"}  # else a replica's first sync waits 5 s


LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
STOCK = {  # django-redis's documented Sentinel setup: how sessions reached Sentinel before
    "CLIENT_CLASS": "django_redis.client.SentinelClient",
    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
}


class SentinelGroup:
    def __init__(self, replicas: int = REPLICAS) -> None:
        primary = RedisServer(config=DATA).start()
        self.data = [primary] + [RedisServer(config=DATA).start() for _ in range(replicas)]
        for replica in self.data[1:]:
            follow(replica, primary)
        monitor = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {QUORUM}",
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

    def primary(self, index: int = 0) -> RedisServer:
        """The data node sentinel ``index`` names as the primary."""
        _, port = self.sentinel(index).sentinel_get_master_addr_by_name(SERVICE)
        return next(server for server in self.data if server.port == int(port))

    def replicas(self) -> list[RedisServer]:
        primary = self.primary()
        return [server for server in self.data if server is not primary]

    def replica(self) -> RedisServer:
        """The first replica (any one will do)."""
        return self.replicas()[0]

    def role(self, server: RedisServer) -> str:
        try:
            return str(Redis(port=server.port, socket_timeout=1).role()[0].decode())
        except Exception:
            return "down"

    def ready(self, timeout: float = 40.0) -> None:
        """Wait until a failover can happen: every sentinel knows the other two and every
        replica, every replica is in sync, and no failover is under way."""
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Sentinel group is not ready after {timeout} s: {self.state()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            primary, replicas = self.primary(), self.replicas()
            if self.role(primary) != "master" or any(self.role(r) != "slave" for r in replicas):
                return False
            for replica in replicas:
                info = Redis(port=replica.port).info("replication")
                if info["master_link_status"] != "up" or info["master_port"] != primary.port:
                    return False
            return all(self._sentinel_ready(index, primary, replicas) for index in range(len(self.sentinels)))
        except Exception:
            return False

    def _sentinel_ready(self, index: int, primary: RedisServer, replicas: list[RedisServer]) -> bool:
        sentinel = self.sentinel(index)
        master = sentinel.sentinel_master(SERVICE)
        if master["port"] != primary.port or master["num-other-sentinels"] != len(self.sentinels) - 1:
            return False
        if master["is_sdown"] or "failover_in_progress" in master["flags"]:
            return False
        known = {r["port"] for r in sentinel.sentinel_slaves(SERVICE) if r["flags"] == "slave"}
        return {replica.port for replica in replicas} <= known

    def failed_over(self, old: RedisServer) -> bool:
        """Whether every sentinel names a primary other than ``old``, which answers as one, and
        none is failing over still (the leader has reconfigured every replica)."""
        try:
            for index in range(len(self.sentinels)):
                master = self.sentinel(index).sentinel_master(SERVICE)
                if master["port"] == old.port or "failover_in_progress" in master["flags"]:
                    return False
            return self.role(self.primary()) == "master"
        except Exception:
            return False

    def state(self) -> dict[str, Any]:
        """What the group looks like, for a failure message."""
        described: dict[str, Any] = {f"data {s.port}": self.role(s) for s in self.data}
        for index, sentinel in enumerate(self.sentinels):
            try:
                master = self.sentinel(index).sentinel_master(SERVICE)
                described[f"sentinel {sentinel.port}"] = (master["port"], master["flags"], master["config-epoch"])
            except Exception as exc:
                described[f"sentinel {sentinel.port}"] = repr(exc)
        return described

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data]:
            server.stop()


def alias(group: SentinelGroup, db: int, use_hash: bool, **options: Any) -> dict[str, Any]:
    """What a user writes: our backend, SENTINELS and redis://<service>/<db>."""
    return {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": group.location(db),
        "OPTIONS": {"SENTINELS": group.addresses, "USE_HASH": use_hash, "SOCKET_TIMEOUT": 1, **options},
    }


def direct(server: RedisServer, db: int, use_hash: bool) -> dict[str, Any]:
    """An alias on one data node itself (to read what a given server holds)."""
    return {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": f"{server.url}/{db}",
        "OPTIONS": {"USE_HASH": use_hash},
    }


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
