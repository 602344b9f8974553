"""Where a storage's names live, and sending its calls: the sync and the async executor.

A storage mode describes each operation as ``Call``s (``calls.py``);
``Executor.execute`` sends one through the alias's redis-py client with the
``RETRY`` policy and turns redis-py's errors into the engine's
(``errors.py``); ``aexecute`` sends the very same call on ``redis.asyncio``
(``aio.py``). ``execute_many``/``aexecute_many`` pipeline several, one round
trip per server. The topology methods (``redis_for``, ``servers``,
``by_server``, ``aredis``) say where a name lives: one server here; the
mixins of ``cluster.py`` and ``partitioned.py`` override them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError, ResponseError

from . import aio, errors
from .calls import Call, T, pipelined, send

if TYPE_CHECKING:
    from django_redis.client import DefaultClient
    from redis import Redis

    from .conf import SessionOptions
    from .replicas import Acks


class Executor:
    # Whether MIN_REPLICAS_ACK can pipeline a write with its WAIT to the server that ran it.
    acks_supported = True
    # Whether OPERATION_TIMEOUT bounds this topology's operations (a deadline, cluster.py).
    deadline_supported = False

    def __init__(self, client: DefaultClient, options: SessionOptions) -> None:
        self.client = client
        self.retry = options.retry
        self.aretry = aio.async_retry(options.retry)
        self.acks = options.acks  # MIN_REPLICAS_ACK: None, or the WAIT sent after each write
        if self.acks is not None and not self.acks_supported:
            raise ImproperlyConfigured(
                f"OPTIONS['MIN_REPLICAS_ACK'] is not supported on {type(self).__name__} yet: "
                f"use min-replicas-to-write in the servers' configuration instead."
            )
        self.operation_timeout = options.operation_timeout
        if self.operation_timeout is not None and not self.deadline_supported:
            raise ImproperlyConfigured(
                f"OPTIONS['OPERATION_TIMEOUT'] is supported on Redis Cluster only, not on {type(self).__name__}: "
                f"bound an operation with SOCKET_TIMEOUT, SOCKET_CONNECT_TIMEOUT and RETRY instead."
            )
        self._moves: bool | None = None

    def redis(self) -> Redis:
        # Always the primary: a replica that lags behind would log users out.
        redis: Redis = self.client.get_client(write=True)
        return redis

    # Topology: where a name lives. One server here (standalone, or the primary of a
    # Sentinel service); a partitioned alias (partitioned.py) and a cluster (cluster.py)
    # override these in mixins of their own.

    def redis_for(self, name: bytes) -> Redis:
        """The client of the server that holds ``name``."""
        return self.redis()

    def servers(self) -> list[Redis]:
        """One client per server holding sessions (every primary, every shard): what
        sweeps, statistics and checks walk."""
        return [self.redis()]

    def aredis(self, sync_redis: Redis) -> Any:
        """The ``redis.asyncio`` twin of a client of ``servers()``/``redis_for()`` in the running
        loop; ``aio.NotNative`` where this topology has none yet (the sync path in a thread)."""
        return aio.client_for(sync_redis)

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        """``names`` grouped by the client that holds them (for pipelines)."""
        return [(self.redis(), list(names))]

    # What a failure means here. A Sentinel primary can move: there a READONLY reply means
    # "the server you reach was just demoted", which a retry on the new primary cures.

    def primary_moves(self) -> bool:
        """Whether the primary can move under this storage (a Sentinel service)."""
        if self._moves is None:
            from redis.sentinel import SentinelConnectionPool

            pool = getattr(self.redis(), "connection_pool", None)
            self._moves = isinstance(pool, SentinelConnectionPool)
        return self._moves

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``RETRY`` retries after ``exc`` (see ``errors.is_retryable``)."""
        return errors.is_retryable(exc) or (errors.is_readonly(exc) and self.primary_moves())

    def after_failure(self, redis: Any, exc: BaseException) -> None:
        """Before a retry: a lost connection is dropped by redis-py itself; one to a demoted
        primary is not, so ask the sentinels where the primary is now (redis-py then closes
        the idle connections to the old one)."""
        if errors.is_readonly(exc) and self.primary_moves():
            with contextlib.suppress(RedisError, OSError):  # if not now, the retry asks when it connects
                redis.connection_pool.get_master_address()

    # Sending -------------------------------------------------------------

    def execute(self, call: Call[T]) -> T:
        """Send ``call`` (retried by the RETRY policy) and read its reply."""
        if call.args is None:
            return call.parse(None)  # type: ignore[return-value]  # no reply, no follow-up
        acks = self.acks if call.needs_ack else None
        try:
            reply = self.send_retried(call, acks)
        except ResponseError as exc:
            if call.fallback is None or "syntax error" not in str(exc):
                raise errors.translate(exc) from exc
            return self.execute(call.fallback())
        except errors.REDIS_ERRORS as exc:
            raise errors.translate(exc) from exc
        result = call.parse(reply)
        return self.execute(result) if isinstance(result, Call) else result

    def send_retried(self, call: Call[Any], acks: Acks | None) -> Any:
        """``call``'s reply, sent again as the RETRY policy says after a failure a retry cures
        (a cluster bounds this by a deadline instead: ``cluster.ClusterTopology``)."""
        redis = self.redis_for(call.route)
        return self.retry.call_with_retry(
            partial(send, redis, call, acks), partial(self.after_failure, redis), self.is_retryable
        )

    def execute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """Send ``calls`` in one pipeline per server (one round trip each, in order, not a
        transaction; retried as a whole by the RETRY policy); a server with one call
        gets it alone (an EVALSHA), a topology without pipelines of its own one by one."""
        results: list[Any] = [None] * len(calls)
        for redis, indexes in self._by_client(calls):
            if len(indexes) == 1 or not hasattr(redis, "connection_pool"):  # e.g. a cluster client
                for index in indexes:
                    results[index] = self.execute(calls[index])
                continue
            with errors.translated():
                replies = self.retry.call_with_retry(
                    partial(self._send_pipeline, redis, calls, indexes),
                    partial(self.after_failure, redis),
                    self.is_retryable,
                )
            for index, result in self._parsed(calls, indexes, replies):
                results[index] = self.execute(result) if isinstance(result, Call) else result
        return results

    async def aexecute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """``execute_many`` on ``redis.asyncio`` (a thread if there is no asyncio twin)."""
        results: list[Any] = [None] * len(calls)
        for sync_redis, indexes in self._by_client(calls):
            redis = self._apipelining(sync_redis, indexes)
            if redis is None:
                for index in indexes:
                    results[index] = await self.aexecute(calls[index])
                continue
            with errors.translated():
                replies = await self.aretry.call_with_retry(
                    partial(self._asend_pipeline, redis, calls, indexes), aio.ignore, self.is_retryable
                )
            for index, result in self._parsed(calls, indexes, replies):
                results[index] = await self.aexecute(result) if isinstance(result, Call) else result
        return results

    def _apipelining(self, sync_redis: Any, indexes: list[int]) -> Any | None:
        """The asyncio client to pipeline ``indexes`` on, or None: one call at a time."""
        if len(indexes) == 1:
            return None
        try:
            return self.aredis(sync_redis)
        except aio.NotNative:
            return None

    # One attempt each: redis-py empties a pipeline's command stack after every execute
    # (whether it succeeded or not), so a retry must queue the calls again.

    def _send_pipeline(self, redis: Any, calls: list[Call[Any]], indexes: list[int]) -> list[Any]:
        replies: list[Any] = self._queued(redis.pipeline(transaction=False), calls, indexes).execute()
        return replies

    async def _asend_pipeline(self, redis: Any, calls: list[Call[Any]], indexes: list[int]) -> list[Any]:
        replies: list[Any] = await self._queued(redis.pipeline(transaction=False), calls, indexes).execute()
        return replies

    def _queued(self, pipe: Any, calls: list[Call[Any]], indexes: list[int]) -> Any:
        """A pipeline (sync or async) holding ``calls[indexes]``, then, if one of them writes,
        MIN_REPLICAS_ACK's WAIT (whose reply is last)."""
        for index in indexes:
            pipe.execute_command(*pipelined(calls[index]), **calls[index].options)
        if self.acks is not None and any(calls[index].needs_ack for index in indexes):
            pipe.execute_command("WAIT", self.acks.replicas, self.acks.timeout_ms)
        return pipe

    def _parsed(self, calls: list[Call[Any]], indexes: list[int], replies: list[Any]) -> list[tuple[int, Any]]:
        """``(index, result or follow-up Call)`` for each reply of a ``_queued`` pipeline."""
        if len(replies) > len(indexes):  # the WAIT's
            assert self.acks is not None
            with errors.translated():
                self.acks.check(replies.pop())
        return [(index, calls[index].parse(reply)) for index, reply in zip(indexes, replies, strict=True)]

    def _by_client(self, calls: list[Call[Any]]) -> list[tuple[Any, list[int]]]:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, call in enumerate(calls):
            if call.args is not None:
                redis = self.redis_for(call.route)
                groups.setdefault(id(redis), (redis, []))[1].append(index)
        return list(groups.values())

    async def aexecute(self, call: Call[T]) -> T:
        """``execute`` on the running loop's ``redis.asyncio`` client (a thread if there is none)."""
        if call.args is None:
            return call.parse(None)  # type: ignore[return-value]  # no reply, no follow-up
        sync_redis = self.redis_for(call.route)
        try:
            redis = self.aredis(sync_redis)
        except aio.NotNative:
            return await sync_to_async(self.execute)(call)
        try:
            acks = self.acks if call.needs_ack else None
            reply = await aio.send(redis, call, self.aretry, self.is_retryable, acks)
        except ResponseError as exc:
            if call.fallback is None or "syntax error" not in str(exc):
                raise errors.translate(exc) from exc
            return await self.aexecute(call.fallback())
        except errors.REDIS_ERRORS as exc:
            raise errors.translate(exc) from exc
        result = call.parse(reply)
        return await self.aexecute(result) if isinstance(result, Call) else result
