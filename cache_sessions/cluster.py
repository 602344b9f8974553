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
``OPERATION_TIMEOUT`` (``cluster_sessions.py``). Sweeps, statistics and checks
walk every primary through ``ClusterTopology.servers()``.

``ClusterClient`` changes only what one server can do and a cluster cannot:
``get_many`` reads per slot (one pipeline per node) instead of one MGET
across slots, and ``keys()``/``DBSIZE`` on the raw client count every primary
(``ClusterRedis``), not one node.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Collection
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis import exceptions as redis_errors
from redis.cluster import REDIS_ALLOWED_KEYS, ClusterNode, RedisCluster
from redis.connection import ConnectionPool

from . import deadline
from .client import SessionClient
from .cluster_sessions import ClusterHashSessions, ClusterStringSessions, ClusterTopology, ClusterUnreachable

__all__ = ["ClusterClient", "ClusterConnectionFactory", "ClusterRedis", "ClusterTopology", "ClusterUnreachable"]

FACTORY = "cache_sessions.cluster.ClusterConnectionFactory"
_CACHE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ResponseError, socket.timeout)


class ClusterRedis(RedisCluster):
    """``RedisCluster`` that sends whole-keyspace questions to every primary.

    redis-py 8.1 sends KEYS and DBSIZE to one node (a silently partial
    answer); here they go to every primary and the answers are merged. Scripts
    are loaded on every node it can reach, replicas included: Redis does not
    replicate SCRIPT LOAD, so a promoted replica would otherwise answer
    NOSCRIPT to every script after a failover.
    """

    COMMAND_FLAGS = {**RedisCluster.COMMAND_FLAGS, "KEYS": RedisCluster.PRIMARIES, "DBSIZE": RedisCluster.PRIMARIES}

    def script_load(self, script: Any) -> Any:
        sha = None
        failure: Exception | None = None
        nodes: list[Any] = self.get_nodes()  # type: ignore[no-untyped-call]
        for node in nodes:
            try:
                sha = self.get_redis_connection(node).script_load(script)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:  # a dead node: skipped
                failure = exc
        if sha is None:
            raise failure or redis_errors.ConnectionError("SCRIPT LOAD: no node of the cluster answered")
        return sha


class ClusterConnectionFactory(ConnectionFactory):
    """django-redis connection factory making ``RedisCluster`` clients.

    ``connect(url)`` takes the startup nodes, comma-separated, and returns the
    one cluster client of this process for them and these settings.
    """

    _clusters: dict[tuple[str, str], RedisCluster] = {}  # process-global, like django-redis's _pools
    _lock = threading.Lock()

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        path = options.get("REDIS_CLIENT_CLASS")
        client_class = import_string(path) if path else ClusterRedis
        if not (isinstance(client_class, type) and issubclass(client_class, RedisCluster)):
            raise ImproperlyConfigured(f"OPTIONS['REDIS_CLIENT_CLASS'] = {path!r} is not a redis.cluster.RedisCluster")
        self.redis_client_cls = client_class
        self.cluster_kwargs = self._cluster_kwargs()
        self.settings_key = repr((client_class, sorted(self.cluster_kwargs.items(), key=lambda item: item[0])))

    def _cluster_kwargs(self) -> dict[str, Any]:
        """What every node connection gets: django-redis's options, CONNECTION_POOL_KWARGS,
        REDIS_CLIENT_KWARGS. A name RedisCluster would silently drop is refused here."""
        if self.options.get("PARSER_CLASS"):
            raise ImproperlyConfigured("OPTIONS['PARSER_CLASS'] is not supported on Redis Cluster (redis-py drops it)")
        params = self.make_connection_params("")
        del params["url"], params["parser_class"]
        accepted = set(REDIS_ALLOWED_KEYS) - {"host", "port", "retry", "db", "connection_pool"}
        unknown = sorted(set(self.pool_cls_kwargs) - accepted)
        own = set(inspect.signature(RedisCluster.__init__).parameters) - {"self", "kwargs", "host", "port", "url"}
        unknown += sorted(set(self.redis_client_cls_kwargs) - accepted - own)
        if unknown:
            raise ImproperlyConfigured(
                f"Redis Cluster cannot apply {', '.join(map(repr, unknown))} (CONNECTION_POOL_KWARGS or "
                f"REDIS_CLIENT_KWARGS): redis.cluster.RedisCluster would ignore it"
            )
        kwargs = {**params, **self.pool_cls_kwargs, **self.redis_client_cls_kwargs}
        if "CONNECTION_POOL_CLASS" in self.options:
            kwargs["connection_pool_class"] = self.pool_cls
        return kwargs

    def connect(self, url: str) -> RedisCluster:
        key = (url, self.settings_key)
        cluster = self._clusters.get(key)
        if cluster is None:
            with self._lock:
                cluster = self._clusters.get(key)
                if cluster is None:
                    cluster = self._clusters[key] = self.make_cluster(url)
        return cluster

    def connected(self, url: str) -> RedisCluster | None:
        """The cluster client for ``url`` if this process has made it, else None (never connects)."""
        return self._clusters.get((url, self.settings_key))

    def make_cluster(self, url: str) -> RedisCluster:
        first, *others = startup_urls(url)
        nodes = [ClusterNode(parsed.hostname, parsed.port or 6379) for parsed in map(urlparse, others)]  # type: ignore[no-untyped-call]
        # Node connections whose waits a session operation's deadline cuts short (deadline.py).
        pool_class = deadline.bounded_pool(self.cluster_kwargs.get("connection_pool_class", ConnectionPool))
        try:
            cluster = self.redis_client_cls(
                url=first, startup_nodes=nodes, **{**self.cluster_kwargs, "connection_pool_class": pool_class}
            )
        except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
            # django-redis re-raises the cause (unless IGNORE_EXCEPTIONS): the redis-py
            # ConnectionError, as with one server that is down.
            cause = exc.__cause__ if isinstance(exc.__cause__, redis_errors.RedisError) else exc
            addresses = ", ".join(map(_address, [first, *others]))
            raise ClusterUnreachable(f"Redis Cluster at {addresses} cannot be reached: {exc}") from cause
        cluster.set_retry(deadline.bounded_retry(cluster.retry))  # type: ignore[no-untyped-call, unused-ignore]
        return cluster

    def disconnect(self, connection: RedisCluster) -> None:
        """Close the sockets of every node (they reopen on next use), like django-redis's pools."""
        connection.disconnect_connection_pools()  # type: ignore[no-untyped-call]


def _address(url: str) -> str:
    """``host:port`` of a URL: what error messages show (never its password)."""
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port or 6379}"


def startup_urls(location: str) -> list[str]:
    """The startup node URLs of a LOCATION; ``ImproperlyConfigured`` for what a cluster cannot be."""
    urls = [part.strip() for part in location.split(",") if part.strip()]
    if not urls:
        raise ImproperlyConfigured("Redis Cluster needs at least one startup node URL in LOCATION")
    shared = None
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise ImproperlyConfigured(
                f"Redis Cluster startup nodes are redis://host:port or rediss://host:port URLs, not {parsed.scheme}://"
            )
        db = parse_qs(parsed.query).get("db", [parsed.path.strip("/") or "0"])[0]
        if db != "0":
            raise ImproperlyConfigured(
                f"Redis Cluster has only database 0, not {db!r} ({_address(url)}): use KEY_PREFIX"
            )
        options = (parsed.scheme, parsed.username, parsed.password, parsed.query)
        if shared not in (None, options):
            raise ImproperlyConfigured("Every startup node URL must differ from the first only by host and port")
        shared = options
    return urls


def _after_fork_in_child() -> None:
    # The parent's clients and their sockets are the parent's: a child makes its own.
    ClusterConnectionFactory._lock = threading.Lock()
    ClusterConnectionFactory._clusters = {}


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_all() -> None:
    """Close and forget every cluster client of this process (tests, shutdown hooks)."""
    with ClusterConnectionFactory._lock:
        clusters, ClusterConnectionFactory._clusters = ClusterConnectionFactory._clusters, {}
    for cluster in clusters.values():
        cluster.close()


class ClusterClient(SessionClient):
    """``OPTIONS["CLIENT_CLASS"]`` for an alias on Redis Cluster: ``LOCATION`` lists startup nodes."""

    string_storage = ClusterStringSessions
    hash_storage = ClusterHashSessions

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
