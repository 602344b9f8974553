"""Sending calls: the sync and the async executor, given a topology.

A storage mode describes each operation as ``Call``s (``calls.py``);
``Executor.execute`` sends one to the server its topology names for it
(``topology/base.py``: where a name lives, how a call is retried, what a failure
means), reads its reply (and sends the follow-up call a reply may ask for), and
turns redis-py's errors into the engine's (``errors.py``); ``aexecute`` sends
the very same call on the topology's ``redis.asyncio`` twin, or runs the sync
path in a thread where there is none. ``execute_many``/``aexecute_many``
pipeline several, one round trip per server. One attempt at one call on one
client is ``sending.py``'s. ``MIN_REPLICAS_ACK``'s WAIT (``acks.py``) goes in the
round trip of each write.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ResponseError

from .. import errors
from ..topology.async_clients import NotNative
from .calls import Call, T, pipelined
from .sending import asend, send

if TYPE_CHECKING:
    from ..topology.base import Topology
    from .acks import Acks


class Executor:
    def __init__(self, topology: Topology, acks: Acks | None = None) -> None:
        """``acks``: MIN_REPLICAS_ACK, the WAIT sent after each write (None: none)."""
        if acks is not None and not topology.acks_supported:
            raise ImproperlyConfigured(
                f"OPTIONS['MIN_REPLICAS_ACK'] is not supported on {type(topology).__name__} yet: "
                f"use min-replicas-to-write in the servers' configuration instead."
            )
        self.topology = topology
        self.acks = acks

    def execute(self, call: Call[T]) -> T:
        """Send ``call`` (retried as the topology says) and read its reply."""
        if not self.topology.deadline_supported:  # nothing bounds an operation: no context to enter
            return self._execute(call)
        with self.topology.operation():
            return self._execute(call)

    def _execute(self, call: Call[T]) -> T:
        if call.args is None:
            return call.parse(None)  # type: ignore[return-value]  # no reply, no follow-up
        acks = self.acks if call.needs_ack else None
        try:
            reply = self.topology.send(call.route, send, call, acks)
        except ResponseError as exc:
            if call.fallback is None or call.fallback_on not in str(exc):
                raise errors.translate(exc) from exc
            return self._execute(call.fallback())
        except errors.REDIS_ERRORS as exc:
            raise errors.translate(exc) from exc
        result = call.parse(reply)
        return self._execute(result) if isinstance(result, Call) else result

    def execute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """Send ``calls`` in one pipeline per server (one round trip each, in order, not a
        transaction; retried as a whole by the RETRY policy); a server with one call
        gets it alone (an EVALSHA), a topology without pipelines one by one."""
        with self.topology.operation():
            results: list[Any] = [None] * len(calls)
            for redis, indexes in self._by_client(calls):
                if len(indexes) == 1 or not self.topology.pipelines:
                    for index in indexes:
                        results[index] = self._execute(calls[index])
                    continue
                with errors.translated():
                    replies = self.topology.retried(redis, partial(self._send_pipeline, redis, calls, indexes))
                for index, result in self._parsed(calls, indexes, replies):
                    results[index] = self._execute(result) if isinstance(result, Call) else result
            return results

    async def aexecute(self, call: Call[T]) -> T:
        """``execute`` on the running loop's ``redis.asyncio`` client (a thread if there is none)."""
        if not self.topology.deadline_supported:  # nothing bounds an operation: no context to enter
            return await self._aexecute(call)
        with self.topology.operation():
            return await self._aexecute(call)

    async def _aexecute(self, call: Call[T]) -> T:
        if call.args is None:
            return call.parse(None)  # type: ignore[return-value]  # no reply, no follow-up
        try:
            redis = self.topology.aredis_for(call.route)
        except NotNative:
            return await sync_to_async(self.execute)(call)
        try:
            acks = self.acks if call.needs_ack else None
            reply = await self.topology.aretried(partial(asend, redis, call, acks))
        except ResponseError as exc:
            if call.fallback is None or call.fallback_on not in str(exc):
                raise errors.translate(exc) from exc
            return await self.aexecute(call.fallback())
        except errors.REDIS_ERRORS as exc:
            raise errors.translate(exc) from exc
        result = call.parse(reply)
        return await self.aexecute(result) if isinstance(result, Call) else result

    async def aexecute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """``execute_many`` on ``redis.asyncio`` (a thread if there is no asyncio twin)."""
        with self.topology.operation():
            return await self._aexecute_many(calls)

    async def _aexecute_many(self, calls: list[Call[Any]]) -> list[Any]:
        if not self.topology.pipelines:  # one at a time (Redis Cluster)
            return [await self.aexecute(call) for call in calls]
        results: list[Any] = [None] * len(calls)
        for sync_redis, indexes in self._by_client(calls):
            redis = self._apipelining(sync_redis, indexes)
            if redis is None:
                for index in indexes:
                    results[index] = await self.aexecute(calls[index])
                continue
            with errors.translated():
                replies = await self.topology.aretried(partial(self._asend_pipeline, redis, calls, indexes))
            for index, result in self._parsed(calls, indexes, replies):
                results[index] = await self.aexecute(result) if isinstance(result, Call) else result
        return results

    def _apipelining(self, sync_redis: Any, indexes: list[int]) -> Any | None:
        """The asyncio client to pipeline ``indexes`` on, or None: one call at a time."""
        if len(indexes) == 1:
            return None
        try:
            return self.topology.aredis(sync_redis)
        except NotNative:
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
            for command in calls[index].more:
                pipe.execute_command(*command)
        if self.acks is not None and any(calls[index].needs_ack for index in indexes):
            pipe.execute_command("WAIT", self.acks.replicas, self.acks.timeout_ms)
        return pipe

    def _parsed(self, calls: list[Call[Any]], indexes: list[int], replies: list[Any]) -> list[tuple[int, Any]]:
        """``(index, result or follow-up Call)`` for each reply of a ``_queued`` pipeline."""
        if len(replies) > sum(1 + len(calls[index].more) for index in indexes):  # the WAIT's
            assert self.acks is not None
            with errors.translated():
                self.acks.check(replies.pop())
        parsed, replies = [], replies[::-1]
        for index in indexes:
            call = calls[index]
            reply = replies.pop() if not call.more else [replies.pop() for _ in range(1 + len(call.more))]
            parsed.append((index, call.parse(reply)))
        return parsed

    def _by_client(self, calls: list[Call[Any]]) -> list[tuple[Any, list[int]]]:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, call in enumerate(calls):
            if call.args is not None:
                redis = self.topology.redis_for(call.route)
                groups.setdefault(id(redis), (redis, []))[1].append(index)
        return list(groups.values())
