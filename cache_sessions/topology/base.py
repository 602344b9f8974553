"""Where a name lives and how to reach it: the topology a storage's executor is given.

A ``Topology`` is a strategy object. The executor (``storage/executor.py``) asks
it, for each call, which server holds the call's name and how to send the call
with its retries; what walks every server (sweeps, statistics, checks, the
backfill) asks it for ``servers()``. It answers:

- where: ``redis_for(name)``, the client of the server holding a Redis name;
  ``servers()``, one client per server holding sessions (every primary, every
  shard); ``by_server(names)``, names grouped by server; ``aredis(sync_redis)``,
  the ``redis.asyncio`` twin of one of those clients in the running loop, and
  ``aredis_for(name)``, the one of the server holding a name (``NotNative``
  where there is none: the executor then runs the sync path in a thread);
- what is known of the servers (``server_facts``): ``facts_for(name)``,
  ``known_facts()``, and ``afacts()`` for the asyncio path, which must learn
  them without sync I/O on the loop (on Redis Cluster, without the sync client);
- what a failure means: ``is_retryable(exc)``, and ``after_failure(redis, exc)``
  before a retry;
- how a call is sent: ``send(name, attempt, *args)`` runs ``attempt`` on the server
  of ``name``, again after each failure a retry cures, as the ``RETRY`` policy
  says; ``retried`` and ``aretried`` do the same for a pipeline of one server
  and for an asyncio attempt; ``operation()`` is what bounds one operation,
  follow-up calls included (nothing here; OPERATION_TIMEOUT on Redis Cluster);
- what it cannot do: ``acks_supported`` (MIN_REPLICAS_ACK's WAIT after a
  write), ``pipelines`` (several calls to one server in one round trip),
  ``deadline_supported`` (OPERATION_TIMEOUT).

This class is one server: the alias's primary (``client.get_client(write=True)``).
The others: ``sentinel.SentinelTopology`` (a primary that moves),
``cluster.ClusterTopology`` (Redis Cluster), ``partitioned.PartitionedTopology``
(several servers by weight); ``Direct`` is one redis-py client given as it is.
``storage/registry.py`` picks one per alias.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from .. import errors
from . import async_clients, server_facts

if TYPE_CHECKING:
    from redis import Redis
    from redis.retry import Retry

T = TypeVar("T")

_UNBOUNDED = contextlib.nullcontext()  # reusable: what operation() is where nothing bounds it


class Topology:
    """One server: the alias's primary."""

    # Whether MIN_REPLICAS_ACK can pipeline a write with its WAIT to the server that ran it.
    acks_supported = True
    # Whether the calls of one server can share a pipeline (one round trip).
    pipelines = True
    # Whether OPERATION_TIMEOUT bounds operations here (a deadline: cluster.ClusterTopology).
    deadline_supported = False

    def __init__(self, client: Any, retry: Retry, operation_timeout: float | None = None) -> None:
        """``client``: the alias's django-redis client; ``retry``: its ``RETRY`` policy."""
        if operation_timeout is not None and not self.deadline_supported:
            raise ImproperlyConfigured(
                f"OPTIONS['OPERATION_TIMEOUT'] is supported on Redis Cluster only, not on {type(self).__name__}: "
                f"bound an operation with SOCKET_TIMEOUT, SOCKET_CONNECT_TIMEOUT and RETRY instead."
            )
        self.client = client
        self.retry = retry
        self.aretry = async_clients.async_retry(retry)

    # Where a name lives -----------------------------------------------------

    def redis(self) -> Redis:
        # Always the primary: a replica that lags behind would log users out.
        redis: Redis = self.client.get_client(write=True)
        return redis

    def redis_for(self, name: bytes) -> Redis:
        """The client of the server that holds ``name``."""
        return self.redis()

    def servers(self) -> list[Redis]:
        """One client per server holding sessions (every primary, every shard): what
        sweeps, statistics and checks walk."""
        return [self.redis()]

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        """``names`` grouped by the client that holds them (for pipelines)."""
        return [(self.redis(), list(names))]

    def aredis(self, sync_redis: Redis) -> Any:
        """The ``redis.asyncio`` twin of a client of ``servers()``/``redis_for()`` in the running
        loop; ``async_clients.NotNative`` where there is none (the executor then uses a thread)."""
        return async_clients.client_for(sync_redis)

    def aredis_for(self, name: bytes) -> Any:
        """The ``redis.asyncio`` client of the running loop for the server that holds ``name``."""
        return self.aredis(self.redis_for(name))

    # What this process knows of the servers (``server_facts``) ---------------------

    def facts_for(self, name: bytes) -> server_facts.ServerFacts:
        """The facts record of the server that holds ``name`` (no I/O: a call builder's, sync or async)."""
        return server_facts.of(self.redis_for(name))

    def known_facts(self) -> list[server_facts.ServerFacts] | None:
        """The facts record of each server of ``servers()``, or None where listing them would
        take I/O (a Redis Cluster this process has not discovered on its sync client)."""
        return [server_facts.of(redis) for redis in self.servers()]

    async def aservers(self) -> list[Any]:
        """``servers()`` on the running loop: for each server, a ``redis.asyncio`` client that
        can walk it (``scan_iter``), found without sync I/O; ``async_clients.NotNative``
        where there is none."""
        return [self.aredis(redis) for redis in self.servers()]

    async def afacts(self) -> list[tuple[server_facts.ServerFacts, Any]]:
        """For each server of ``servers()``, its facts record and a ``redis.asyncio`` client
        of the running loop that can ask it (``config_get``, ``info``), found without sync
        I/O; ``async_clients.NotNative`` where there is none."""
        return [(server_facts.of(redis), self.aredis(redis)) for redis in self.servers()]

    # What a failure means ------------------------------------------------------

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``RETRY`` retries after ``exc`` (see ``errors.is_retryable``)."""
        return errors.is_retryable(exc)

    def after_failure(self, redis: Any, exc: BaseException) -> None:
        """Before a retry: nothing to do, redis-py has already dropped the broken connection."""

    # Sending --------------------------------------------------------------------

    def operation(self) -> contextlib.AbstractContextManager[None]:
        """What bounds one operation, its follow-up calls included (nothing, here)."""
        return _UNBOUNDED

    def send(self, name: bytes, attempt: Callable[..., T], *args: Any) -> T:
        """``attempt(client of name, *args)``, again after each failure a retry cures (the RETRY policy)."""
        redis = self.redis_for(name)
        return self.retry.call_with_retry(
            partial(attempt, redis, *args), partial(self.after_failure, redis), self.is_retryable
        )

    def retried(self, redis: Any, attempt: Callable[[], T]) -> T:
        """``attempt()`` on ``redis`` (a pipeline of that server), retried as ``send`` is."""
        return self.retry.call_with_retry(attempt, partial(self.after_failure, redis), self.is_retryable)

    async def aretried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` (on a ``redis.asyncio`` client), retried by the asyncio twin of the RETRY policy."""
        result: T = await self.aretry.call_with_retry(attempt, _ignore, self.is_retryable)
        return result


async def _ignore(error: Exception) -> None:
    pass  # redis-py has already dropped the broken connection


class Direct(Topology):
    """One server through a redis-py client of its own, not a django-redis alias's (the old
    stores ``MIGRATE_FROM`` reads)."""

    def __init__(self, redis: Redis, retry: Retry) -> None:
        super().__init__(None, retry)
        self._redis = redis

    def redis(self) -> Redis:
        return self._redis
