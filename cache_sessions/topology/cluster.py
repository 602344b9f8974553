"""Redis Cluster as a topology: where a name lives, and sending a call within ``OPERATION_TIMEOUT``.

``redis_for`` is the cluster client itself (it routes by slot); ``servers`` and
``by_server`` are per primary. Each session operation runs under a deadline
(``deadline.py``): what a failover explains (a lost or refused connection, a
timeout, ``CLUSTERDOWN``, ``TRYAGAIN``, a slot no node serves yet, no node
reachable) is retried with the ``RETRY`` backoff until it succeeds or the
deadline comes, then reported as ``SessionStoreUnavailable``. A failover
shorter than the deadline is a wait, not an error; a cluster that stays down is
an error within the deadline. The cluster client itself, and the connections
whose waits the deadline cuts, are made in ``cluster_connections.py``.

On asyncio the same holds: each event loop has its own ``redis.asyncio``
cluster client for the alias (``async_cluster.py``), and its operations run
under the same deadline, each attempt cancelled when it comes
(``deadline.aretrying``). The nodes that sweeps walk get the one-server asyncio
twins of their pools (``async_clients``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django_redis.exceptions import ConnectionInterrupted
from redis import exceptions as redis_errors
from redis.cluster import RedisCluster

from .. import errors
from . import async_clients, async_cluster, deadline, server_facts
from .base import Topology

if TYPE_CHECKING:
    import contextlib

    from redis import Redis
    from redis.retry import Retry

T = TypeVar("T")

DEFAULT_OPERATION_TIMEOUT = 3.0  # seconds: rides out a failover with cluster-node-timeout ~1 s
# Failures a failover explains, beyond a lost connection or a timeout (errors.is_retryable).
_FAILOVER_ERRORS = (redis_errors.ClusterError, redis_errors.TryAgainError, redis_errors.SlotNotCoveredError)


class ClusterUnreachable(ConnectionInterrupted, redis_errors.ConnectionError):
    """No node of the cluster answered: django-redis's ``ConnectionInterrupted`` for the
    cache API (``IGNORE_EXCEPTIONS`` applies), a redis-py ``ConnectionError`` for the
    sessions (retried, then ``SessionStoreUnavailable``)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.connection = None

    def __str__(self) -> str:
        return Exception.__str__(self)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's cluster client finding no node to ask (a
    ``RedisClusterException``, not a ``RedisError``, whatever the version calls it)."""
    if not isinstance(exc, redis_errors.RedisClusterException):
        return False
    unreachable_error = getattr(redis_errors, "RedisClusterUnreachableError", ())
    return isinstance(exc, unreachable_error) or str(exc).startswith("Redis Cluster cannot be connected")


class ClusterTopology(Topology):
    """Redis Cluster: names routed by slot, every primary walked, operations within a deadline."""

    acks_supported = False  # a cluster pipeline does not promise WAIT the write's node
    pipelines = False  # a cluster pipeline refuses EVALSHA: one call at a time
    deadline_supported = True

    def __init__(self, client: Any, retry: Retry, operation_timeout: float | None = None) -> None:
        super().__init__(client, retry)
        self.timeout = DEFAULT_OPERATION_TIMEOUT if operation_timeout is None else operation_timeout
        self._last_acluster: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._facts_id: tuple[Any, ...] | None = None  # server_facts.cluster_id of the alias

    def cluster(self) -> Any:  # a RedisCluster (whose node methods redis-py leaves untyped)
        return self.client.get_client(write=True)

    def aredis(self, sync_redis: Redis) -> Any:
        """The loop's asyncio cluster client for the cluster client, the asyncio twin of a
        node's pool for a node (``servers()``)."""
        if isinstance(sync_redis, RedisCluster):
            return self.acluster()
        return async_clients.client_for(sync_redis)

    def aredis_for(self, name: bytes) -> Any:
        return self.acluster()  # without making the sync cluster client (which connects at once)

    def acluster(self) -> Any:
        """The running loop's ``redis.asyncio`` cluster client of the alias."""
        loop = asyncio.get_running_loop()
        last = self._last_acluster
        if last is not None and last[0] is loop:  # the common case: no registry lookup per call
            return last[1]
        make = getattr(self.client, "async_cluster", None)
        if make is None:
            raise async_clients.NotNative(f"{type(self.client).__name__} makes no asyncio cluster client")
        client = async_clients.per_loop(self, make)
        self._last_acluster = (loop, client)
        return client

    # What is known of the servers: the cluster as a whole for SET NX GET and HSETEX's refusal
    # (kept under its startup nodes: known without connecting), each primary for its limits.

    def facts_for(self, name: bytes) -> server_facts.ServerFacts:
        key = self._facts_id
        if key is None:
            made = getattr(self.client, "facts_id", None)
            if made is None:
                return server_facts.of(self.cluster())
            key = self._facts_id = made()  # kept: a create asks for it every time
        return server_facts.of_id(key)

    def known_facts(self) -> list[server_facts.ServerFacts] | None:
        made = getattr(self.client, "made_cluster", None)
        if made is not None and made() is None:  # not discovered on sync: that would connect
            return None
        return super().known_facts()

    async def aservers(self) -> list[Any]:
        """Each primary, asked through the loop's asyncio cluster client: the sync one is not made."""
        return [on_node for _, on_node in await self.afacts()]

    async def afacts(self) -> list[tuple[server_facts.ServerFacts, Any]]:
        """Each primary that the loop's asyncio cluster client knows (it discovers the cluster
        first, within OPERATION_TIMEOUT), asked through that client: the sync one is not made."""
        cluster = self.acluster()
        with self.operation():
            await self.aretried(cluster.initialize)
        username = cluster.nodes_manager.connection_kwargs.get("username")
        return [
            (self._node_facts(node, username), async_cluster.OnNode(cluster, node)) for node in cluster.get_primaries()
        ]

    @staticmethod
    def _node_facts(node: Any, username: str | None) -> server_facts.ServerFacts:
        """The record of a primary: the one its sync client's would be (``server_facts.server_id``)."""
        return server_facts.of_id(server_facts.node_id(node.host, node.port, username))

    def servers(self) -> list[Redis]:
        cluster = self.cluster()
        return [cluster.get_redis_connection(node) for node in cluster.get_primaries()]

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        cluster = self.cluster()
        groups: dict[str, tuple[Redis, list[bytes]]] = {}
        for name in names:
            node = cluster.get_node_from_key(name)
            groups.setdefault(node.name, (cluster.get_redis_connection(node), []))[1].append(name)
        return list(groups.values())

    def is_retryable(self, exc: BaseException) -> bool:
        """Retried within the deadline: what a failover, or a cluster that is down, explains."""
        return errors.is_retryable(exc) or isinstance(exc, _FAILOVER_ERRORS)

    # Sending under a deadline: an operation and its follow-up calls share one.

    def operation(self) -> contextlib.AbstractContextManager[None]:
        return deadline.within(self.timeout)

    def send(self, name: bytes, attempt: Callable[..., T], *args: Any) -> T:
        backoff = getattr(self.retry, "_backoff", errors.DEFAULT_BACKOFF)  # RETRY's, to space the attempts
        return deadline.retrying(partial(self._send_once, name, attempt, *args), self.is_retryable, backoff)

    def _send_once(self, name: bytes, attempt: Callable[..., T], *args: Any) -> T:
        try:
            return attempt(self.redis_for(name), *args)  # the first use of a cluster client connects
        except redis_errors.RedisClusterException as exc:
            if unreachable(exc):
                raise ClusterUnreachable(f"Redis Cluster: no node answered: {exc}") from exc
            raise

    async def aretried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        backoff = getattr(self.retry, "_backoff", errors.DEFAULT_BACKOFF)
        return await deadline.aretrying(attempt, self.is_retryable, backoff, _judged)


def _judged(exc: Exception) -> Exception:
    """What an asyncio attempt's error means: ``ClusterUnreachable`` for the cluster client's
    finding no node to ask; a lost connection for a connection another task closed under
    this one's command (older redis-py then calls its vanished socket writer or reader: an
    ``AttributeError`` on ``None``); both retried. Anything else as it is."""
    if unreachable(exc):
        return ClusterUnreachable(f"Redis Cluster: no node answered: {exc}")
    if isinstance(exc, AttributeError) and "'NoneType' object" in str(exc):
        return redis_errors.ConnectionError(f"Redis Cluster: the connection was closed under the command ({exc})")
    return exc
