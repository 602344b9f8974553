"""Redis Cluster on ``redis.asyncio``: the cluster client of an alias in an event loop.

``make`` builds a ``redis.asyncio.cluster.RedisCluster`` from what the sync
cluster client of the alias is built from (``cluster_connections``: the startup
node URLs and the connection settings: credentials, TLS, socket timeouts, the
connection class), so both paths reach the same nodes the same way.
``ClusterTopology`` keeps one per event loop and alias (``async_clients.per_loop``),
closed with its loop.

redis-py's asyncio cluster client routes each command by slot and follows
MOVED and ASK itself; its own retries are turned off: every session operation
runs under the engine's deadline (``deadline.aretrying``), which retries what a
failover explains and cuts every wait to the time left. As on the sync side,
scripts are loaded on every node (``script_load``): Redis does not replicate
SCRIPT LOAD, and a promoted replica answers NOSCRIPT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from . import async_clients

# Set here, never copied from the sync settings: the nodes, the (absent) retries, the connection class.
_OURS = frozenset({"self", "kwargs", "host", "port", "url", "startup_nodes", "retry", "db", "path", "connection_class"})


class AsyncClusterRedis(RedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` that loads scripts on every node it can reach
    (``cluster_connections.ClusterRedis.script_load``, on asyncio) and, when closed, closes
    the connections of every node it knows or was given, whatever state it is in (older
    redis-py closes nothing while a topology refresh is due, and forgets the startup nodes
    that a discovery replaced)."""

    given_nodes: list[ClusterNode]

    async def aclose(self) -> None:
        await super().aclose()
        nodes = {id(node): node for node in [*self.given_nodes, *self.nodes_manager.startup_nodes.values()]}
        nodes.update((id(node), node) for node in self.get_nodes())
        await asyncio.gather(*(node.disconnect() for node in nodes.values()), return_exceptions=True)

    async def script_load(self, script: Any) -> Any:
        nodes = self.get_nodes()
        replies = await asyncio.gather(
            *(self.execute_command("SCRIPT LOAD", script, target_nodes=node) for node in nodes),
            return_exceptions=True,
        )
        for reply in replies:  # a dead node is skipped; any other error is the caller's
            if isinstance(reply, BaseException) and not isinstance(
                reply, (redis_errors.ConnectionError, redis_errors.TimeoutError)
            ):
                raise reply
        shas = [reply for reply in replies if not isinstance(reply, BaseException)]
        if not shas:
            failure = next((reply for reply in replies if isinstance(reply, Exception)), None)
            raise failure or redis_errors.ConnectionError("SCRIPT LOAD: no node of the cluster answered")
        return shas[0]


class OnNode:
    """One node of an asyncio cluster client, asked what ``server_facts`` reads from a server
    (``Topology.afacts``) and walked by a sweep (``Topology.aservers``): ``config_get``,
    ``info`` and ``scan_iter`` as on a ``redis.asyncio.Redis``."""

    def __init__(self, cluster: RedisCluster, node: ClusterNode) -> None:
        self.cluster = cluster
        self.node = node

    async def config_get(self, pattern: str) -> Any:
        return await self.cluster.config_get(pattern, target_nodes=self.node)

    async def info(self, section: str) -> Any:
        return await self.cluster.info(section, target_nodes=self.node)

    def scan_iter(self, **kwargs: Any) -> AsyncIterator[Any]:
        return self.cluster.scan_iter(target_nodes=self.node, **kwargs)


def make(urls: list[str], cluster_kwargs: dict[str, Any]) -> AsyncClusterRedis:
    """An asyncio cluster client for the startup node ``urls`` (checked by
    ``cluster_connections.startup_urls``) with the sync client's ``cluster_kwargs``."""
    first, *others = urls
    accepted = async_clients.parameters(AsyncClusterRedis) - _OURS
    kwargs = {name: value for name, value in cluster_kwargs.items() if name in accepted}
    nodes = [ClusterNode(parsed.hostname, parsed.port or 6379) for parsed in map(urlparse, others)]  # type: ignore[arg-type]
    cluster = AsyncClusterRedis.from_url(first, startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **kwargs)
    assert isinstance(cluster, AsyncClusterRedis)
    cluster.given_nodes = list(cluster.nodes_manager.startup_nodes.values())
    sync_class = cluster_kwargs.get("connection_class")
    if sync_class is not None:  # CONNECTION_POOL_KWARGS names one: its asyncio twin for every node
        twin = async_clients.twin_of(sync_class)
        cluster.nodes_manager.connection_kwargs["connection_class"] = twin
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = twin
    return cluster
