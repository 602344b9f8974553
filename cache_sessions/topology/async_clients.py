"""Native asyncio: ``redis.asyncio`` clients per event loop, and the asyncio twin of a ``Retry``.

django-redis has no asyncio client, so the engine makes its own, one per
event loop and per server, from the connection settings of the sync pool
django-redis built for the alias (address, DB, credentials, timeouts, TLS,
unix socket): whatever the alias says, both paths talk to the same server the
same way. A ``redis.asyncio`` client is bound to the loop it was first used
on, so clients are never shared between loops (``asyncio.run`` twice, threads
with loops of their own, asgiref's per-call loops); they are closed when their
loop closes.

A topology hands these clients to the async executor (``Topology.aredis``,
``storage/executor.py``), which sends on them the very ``Call``s the sync
executor sends. Redis Cluster and Sentinel keep their own asyncio clients here
too (``per_loop``: ``async_cluster.py``, ``async_sentinel.py``). A pool nothing
can mirror (a connection class without an asyncio twin) raises ``NotNative``,
and the executor falls back to running the sync path in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from redis import connection as sync_connection
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio import connection as async_connection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.sentinel import SentinelConnectionPool

if TYPE_CHECKING:
    from redis.retry import Retry

# Sync connection class -> its asyncio twin (the first that matches, most specific first).
_TWINS: tuple[tuple[type[Any], type[async_connection.AbstractConnection]], ...] = (
    (sync_connection.SSLConnection, async_connection.SSLConnection),
    (sync_connection.UnixDomainSocketConnection, async_connection.UnixDomainSocketConnection),
    (sync_connection.Connection, async_connection.Connection),
)
# Sync-only settings: a sync parser, a sync Retry and a sync on-connect hook (a cluster node's)
# must not reach asyncio connections.
_NOT_COPIED = frozenset({"parser_class", "retry", "connection_class", "redis_connect_func"})


class NotNative(Exception):
    """This client's pool has no asyncio twin here: use a thread."""


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Any, Any]]
_clients = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def per_loop(owner: Any, make: Callable[[], Any]) -> Any:
    """The running loop's asyncio client for ``owner`` (a sync pool, a topology: anything a
    weak reference can point to), made by ``make()`` the first time, closed with the loop."""
    loop = asyncio.get_running_loop()
    clients = _clients.get(loop)
    if clients is None:
        with _lock:
            clients = _clients.get(loop)
            if clients is None:
                clients = _clients[loop] = weakref.WeakKeyDictionary()
                _close_with(loop)
    client = clients.get(owner)
    if client is None:
        client = clients[owner] = make()
    return client


def client_for(sync_redis: Any) -> Redis:
    """The ``redis.asyncio`` client of the running loop for the server of ``sync_redis``."""
    pool = getattr(sync_redis, "connection_pool", None)
    if pool is None:
        raise NotNative(f"{type(sync_redis).__name__} has no connection pool to mirror")
    client: Redis = per_loop(pool, lambda: Redis(connection_pool=mirror(pool)))
    return client


def mirror(pool: Any) -> ConnectionPool:
    """An asyncio pool with the connection settings of a sync redis-py pool."""
    if not isinstance(pool, sync_connection.ConnectionPool) or isinstance(pool, SentinelConnectionPool):
        raise NotNative(f"no asyncio twin for {type(pool).__name__}")
    twin = twin_of(pool.connection_class)
    kwargs = twin_kwargs(pool.connection_kwargs, twin)
    return ConnectionPool(connection_class=twin, max_connections=pool.max_connections, **kwargs)


def twin_of(sync_class: type[Any], twins: Iterable[tuple[type[Any], type[Any]]] = ()) -> type[Any]:
    """The asyncio connection class for a sync one: its own ``async_connection_class`` (a hook
    for custom classes; the tests count with it), else the first of ``twins``, then of the
    standard pairs, whose sync class it is (most specific first)."""
    twin: type[Any] | None = getattr(sync_class, "async_connection_class", None)
    if twin is None:
        twin = next((twin for kind, twin in (*twins, *_TWINS) if issubclass(sync_class, kind)), None)
    if twin is None:
        raise NotNative(f"no asyncio twin for the connection class {sync_class.__name__}")
    return twin


def twin_kwargs(connection_kwargs: dict[str, Any], twin: type[Any]) -> dict[str, Any]:
    """The settings of a sync connection that ``twin`` takes too."""
    accepted = parameters(twin)
    return {k: v for k, v in connection_kwargs.items() if k in accepted and k not in _NOT_COPIED}


def parameters(callable_class: type[Any]) -> frozenset[str]:
    """Every keyword the class's ``__init__`` (and its bases') accepts."""
    names: set[str] = set()
    for klass in callable_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return frozenset(names)


def _close_with(loop: asyncio.AbstractEventLoop) -> None:
    """Close the loop's clients when the loop closes (``asyncio.run`` closes it at the end)."""
    original = loop.close

    def close() -> None:
        clients = _clients.pop(loop, None)
        if clients and not loop.is_running() and not loop.is_closed():
            loop.run_until_complete(_close_all(list(clients.values())))
        original()

    with contextlib.suppress(AttributeError):  # a loop class without instance attributes: the GC closes them
        loop.close = close  # type: ignore[method-assign]


async def _close_all(clients: list[Any]) -> None:
    await asyncio.gather(*(_aclose(client) for client in clients), return_exceptions=True)


async def _aclose(client: Any) -> None:
    if isinstance(client, Redis):
        await client.aclose(close_connection_pool=True)
    else:  # a cluster client: it closes its nodes' connections
        await client.aclose()


def async_retry(retry: Retry) -> AsyncRetry:
    """The asyncio twin of a sync ``Retry`` (same backoff, retries and errors, and the
    ``is_retryable`` checker of its own that newer redis-py lets a ``Retry`` carry)."""
    twin = AsyncRetry(retry._backoff, retry.get_retries(), retry._supported_errors)  # type: ignore[arg-type, unused-ignore]
    checker = getattr(retry, "is_retryable", None)
    if checker is not None:
        twin.is_retryable = checker
    return twin
