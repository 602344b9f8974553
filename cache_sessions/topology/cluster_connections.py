"""The Redis Cluster client of an alias: ``ClusterRedis``, made once per process and alias
settings by ``ClusterConnectionFactory`` (django-redis's connection factory, making
clusters instead of pools), whose node connections a session operation's deadline cuts
short (``deadline.py``). ``cache_sessions.cluster`` re-exports them (its public home).
"""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.pool import ConnectionFactory
from redis import exceptions as redis_errors
from redis.cluster import REDIS_ALLOWED_KEYS, ClusterNode, RedisCluster
from redis.connection import ConnectionPool

from . import async_cluster, deadline, server_facts
from .cluster import ClusterUnreachable


class ClusterRedis(RedisCluster):
    """``RedisCluster`` that sends whole-keyspace questions to every primary.

    redis-py sends KEYS and DBSIZE to one node (a silently partial
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

    def async_cluster(self, url: str) -> async_cluster.AsyncClusterRedis:
        """A new ``redis.asyncio`` cluster client for ``url`` with these settings (one per
        event loop: ``ClusterTopology.acluster``). It connects on first use, in its loop."""
        return async_cluster.make(startup_urls(url), self.cluster_kwargs)

    def facts_id(self, url: str) -> tuple[Any, ...]:
        """What this process's facts about the cluster at ``url`` are kept under
        (``server_facts.cluster_id``): known from the settings, without connecting."""
        urls = startup_urls(url)
        username = urlparse(urls[0]).username or self.cluster_kwargs.get("username")
        return server_facts.cluster_id(map(_address, urls), username)

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
