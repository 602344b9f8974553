"""Redis Cluster: the alias's cache and its sessions on ``redis.cluster.RedisCluster``.

One switch::

    "LOCATION": ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],  # startup nodes (or one)
    "OPTIONS": {"CLIENT_CLASS": "cache_sessions.cluster.ClusterClient"},

``ClusterClient`` is our ``SessionClient`` on a ``ClusterConnectionFactory``
(django-redis's connection factory, making clusters instead of pools): one
``RedisCluster`` per process and alias settings, shared by every thread and
cache object, made again in a forked child. redis-py routes each command by
its key's slot and follows MOVED/ASK and failovers; a session operation is
still one command to the node owning it (hash mode keeps every key a script
touches in its bucket's ``{tag}``, so one slot), answered within
``OPERATION_TIMEOUT`` (``topology/cluster.py``). Sweeps, statistics and checks
walk every primary through ``ClusterTopology.servers()``.

``ClusterClient`` changes only what one server can do and a cluster cannot:
``get_many`` reads per slot (one pipeline per node) instead of one MGET
across slots, and ``keys()``/``DBSIZE`` on the raw client count every primary
(``ClusterRedis``), not one node.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django_redis.exceptions import ConnectionInterrupted
from redis import exceptions as redis_errors
from redis.cluster import RedisCluster

from .client import SessionClient
from .topology.cluster import ClusterTopology, ClusterUnreachable
from .topology.cluster_connections import ClusterConnectionFactory, ClusterRedis, close_all, startup_urls

__all__ = [
    "ClusterClient",
    "ClusterConnectionFactory",
    "ClusterRedis",
    "ClusterTopology",
    "ClusterUnreachable",
    "close_all",
    "startup_urls",
]

FACTORY = "cache_sessions.cluster.ClusterConnectionFactory"
_CACHE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ResponseError, socket.timeout)


class ClusterClient(SessionClient):
    """``OPTIONS["CLIENT_CLASS"]`` for an alias on Redis Cluster: ``LOCATION`` lists startup nodes."""

    topology_class = ClusterTopology

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        options = params.get("OPTIONS") or {}
        super().__init__(server, {**params, "OPTIONS": {"CONNECTION_FACTORY": FACTORY, **options}}, backend)
        if not isinstance(self.connection_factory, ClusterConnectionFactory):
            raise ImproperlyConfigured(
                "cache_sessions.cluster.ClusterClient needs OPTIONS['CONNECTION_FACTORY'] to be "
                "cache_sessions.cluster.ClusterConnectionFactory (or a subclass)"
            )
        self._startup_nodes = ",".join(self._server)
        startup_urls(self._startup_nodes)

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> RedisCluster:
        """The process's cluster client for this alias (every node; no replica choice here)."""
        return cast(RedisCluster, self.connection_factory.connect(self._startup_nodes))

    def async_cluster(self) -> Any:
        """A new ``redis.asyncio`` cluster client of this alias (``ClusterTopology`` keeps one per event loop)."""
        return self.connection_factory.async_cluster(self._startup_nodes)

    def made_cluster(self) -> RedisCluster | None:
        """The process's cluster client for this alias if it has been made (never connects)."""
        return cast("RedisCluster | None", self.connection_factory.connected(self._startup_nodes))

    def facts_id(self) -> tuple[Any, ...]:
        """What the facts of this cluster are kept under (``ClusterTopology.facts_for``)."""
        return cast(tuple[Any, ...], self.connection_factory.facts_id(self._startup_nodes))

    def get_client_with_index(self, write: bool = True, tried: list[int] | None = None) -> tuple[RedisCluster, int]:
        return self.get_client(), 0

    def connect(self, index: int = 0) -> RedisCluster:
        return self.get_client()

    def disconnect(self, index: int = 0, client: RedisCluster | None = None) -> None:
        """Close the sockets to every node (``CLOSE_CONNECTION``); they reopen on next use."""
        cluster = client or self.connection_factory.connected(self._startup_nodes)
        if cluster is not None:
            self.connection_factory.disconnect(cluster)

    def do_close_clients(self) -> None:
        self.disconnect()

    def get_many(self, keys: Collection[str], version: int | None = None, client: Any = None) -> dict[str, Any]:
        """One MGET per slot, pipelined per node (one MGET across slots is a CROSSSLOT error)."""
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        names = {self.make_key(key, version=version): key for key in keys}
        try:
            values = client.mget_nonatomic(list(names))
        except _CACHE_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return {names[name]: self.decode(value) for name, value in zip(names, values, strict=True) if value is not None}
