"""Redis Cluster for the tests and benchmarks, built from Python alone.

``Cluster(primaries=3, replicas=1).start()`` starts ``primaries * (1 +
replicas)`` servers with ``--cluster-enabled yes`` on free loopback ports
(each a ``RedisServer``: its own temp dir, stopped by PID), splits the 16,384
slots between the primaries (``CLUSTER ADDSLOTS``; ``ADDSLOTSRANGE`` needs
7.0), introduces the nodes (``CLUSTER MEET``), attaches the replicas
(``CLUSTER REPLICATE``) and waits until every node says ``cluster_state:ok``
and every replica is in sync. No ``redis-cli`` is needed.
"""

from __future__ import annotations

import functools
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis

from cache_sessions.testing import RedisServer, find_redis_server
from tests.support.servers import RECOMMENDED

SLOTS = 16384
CLUSTER_CONFIG = {
    "cluster-enabled": "yes",
    "cluster-node-timeout": "1000",  # a dead primary is replaced after ~2.5 s (default 15 s)
    "repl-diskless-sync-delay": "0",  # else a replica's first sync waits 5 s (Redis 7.0)
}


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (and to ``bind(0)``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; macOS starts at 49152


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, both below the ephemeral
    range: no outgoing connection (a client's, a node's bus link) can take either in the
    meantime. A port another test run takes first makes ``RedisServer.start`` choose again."""
    high = max(_ephemeral_low() - 10000, 12000)
    while True:
        port = random.randrange(10000, high)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout} s")
        time.sleep(0.02)
    return result


def cluster_state(admin: Redis) -> str:
    info = admin.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return str(info["cluster_state"])
    text = info.decode() if isinstance(info, bytes) else info
    return dict(line.split(":", 1) for line in text.split()).get("cluster_state", "")


class Cluster:
    def __init__(self, primaries: int = 3, replicas: int = 0, binary: str | None = None, **config: str) -> None:
        self.binary = binary or find_redis_server()
        self.config = {**RECOMMENDED, **CLUSTER_CONFIG, **config}
        self.primaries = [RedisServer(binary=self.binary, config=self.config) for _ in range(primaries)]
        self.replicas = [RedisServer(binary=self.binary, config=self.config) for _ in range(primaries * replicas)]
        self.servers = self.primaries + self.replicas
        for server in self.servers:
            server.port = cluster_port()
            server.choose_port = cluster_port

    @property
    def urls(self) -> list[str]:
        """The startup nodes, as a user writes them in ``LOCATION``."""
        return [server.url for server in self.primaries]

    def admin(self, server: RedisServer) -> Redis:
        return Redis(port=server.port, socket_timeout=5)

    def start(self) -> Cluster:
        try:
            for server in self.servers:
                server.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        admins = [self.admin(server) for server in self.servers]
        per = -(-SLOTS // len(self.primaries))
        for index, admin in enumerate(admins[: len(self.primaries)]):
            slots = range(index * per, min(SLOTS, (index + 1) * per))
            admin.execute_command("CLUSTER ADDSLOTS", *slots)
        for server in self.servers[1:]:
            admins[0].execute_command("CLUSTER MEET", "127.0.0.1", server.port)
        ids = [admin.execute_command("CLUSTER MYID") for admin in admins]
        ids = [i.decode() if isinstance(i, bytes) else i for i in ids]

        def everyone_known() -> bool:
            return all(len(self._nodes(admin)) == len(admins) for admin in admins)

        wait_for(everyone_known, what="every node knows every node")
        for index, admin in enumerate(admins[len(self.primaries) :]):
            primary_id = ids[index % len(self.primaries)]
            wait_for(lambda a=admin, p=primary_id: p in self._nodes(a), what="replica knows its primary")
            admin.execute_command("CLUSTER REPLICATE", primary_id)
        self.wait_healthy()
        for admin in admins:
            admin.close()

    @staticmethod
    def _nodes(admin: Redis) -> dict[str, str]:
        """``{node id: flags}`` as ``admin`` sees the cluster (CLUSTER NODES, raw)."""
        raw = admin.execute_command("CLUSTER NODES")
        if isinstance(raw, dict):  # redis-py parses it into {address: {...}}
            return {info["node_id"]: info["flags"] for info in raw.values()}
        text = raw.decode() if isinstance(raw, bytes) else raw
        return {line.split()[0]: line.split()[2] for line in text.splitlines() if line.strip()}

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Every live node says ``cluster_state:ok`` and every live replica is in sync."""

        def healthy() -> bool:
            for server in self.servers:
                if server.process is None:
                    continue
                admin = self.admin(server)
                try:
                    if cluster_state(admin) != "ok":
                        return False
                    replication = admin.info("replication")
                    if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                        return False
                except Exception:
                    return False
                finally:
                    admin.close()
            return True

        wait_for(healthy, timeout, what="cluster_state:ok everywhere")

    def role(self, server: RedisServer) -> str:
        admin = self.admin(server)
        try:
            return str(admin.info("replication")["role"])
        finally:
            admin.close()

    def current_primaries(self) -> list[RedisServer]:
        return [server for server in self.servers if server.process is not None and self.role(server) == "master"]

    def current_replicas(self) -> list[RedisServer]:
        return [server for server in self.servers if server.process is not None and self.role(server) == "slave"]

    def flush(self) -> None:
        for server in self.current_primaries():
            admin = self.admin(server)
            admin.flushall()
            admin.close()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@functools.cache
def cluster_support(binary: str) -> str | None:
    """Why ``binary`` cannot run these cluster tests, or None when it can (tried once)."""
    try:
        with Cluster(primaries=1, binary=binary):
            return None
    except Exception as exc:  # reported as the reason of a skip
        return f"{binary} could not form a cluster: {exc!r}"


@functools.cache
def contract_cluster() -> Cluster:
    """3 primaries, no replicas: the session contract and the cache API run here."""
    return Cluster(primaries=3).start()
