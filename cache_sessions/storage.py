"""Session storage: the contract of a storage mode, and sending its calls.

A storage mode turns an operation into a ``Call`` (``calls.py``): one command
(often an EVALSHA) and the function that reads its reply. ``Sessions.execute`` sends
it through the alias's redis-py client with the ``RETRY`` policy and turns
redis-py's errors into the engine's (``errors.py``); an asyncio executor can
run the very same calls. Every operation is one round trip.

``strings.StringSessions`` keeps each session under a key of its own and lets
Redis expire it; ``buckets.HashSessions`` keeps sessions as fields of bucket
hashes. Both talk to Redis through the django-redis client of the alias
(``client.get_client()``), so they share its connection pool, on our
``SessionClient`` and on django-redis's stock clients alike.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError, ResponseError

from . import aio, errors, keys, replicas
from .calls import Call, T, pipelined, send
from .codec import CorruptSession

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache
    from django_redis.client import DefaultClient
    from redis import Redis

    from .conf import SessionOptions

suspicious = logging.getLogger("django.security.SuspiciousSession")


class Sessions:
    """What both storage modes share: the client, the codec, the namespace, the executor."""

    # Whether MIN_REPLICAS_ACK can pipeline a write with its WAIT to the server that ran it.
    acks_supported = True

    def __init__(self, client: DefaultClient, backend: BaseCache, options: SessionOptions, namespace: str = "s"):
        self.client = client
        self.options = options
        self.codec = options.codec
        self.retry = options.retry
        self.aretry = aio.async_retry(options.retry)
        self.acks = options.acks  # MIN_REPLICAS_ACK: None, or the WAIT sent after each write
        if self.acks is not None and not self.acks_supported:
            raise ImproperlyConfigured(
                f"OPTIONS['MIN_REPLICAS_ACK'] is not supported on {type(self).__name__} yet: "
                f"use min-replicas-to-write in the servers' configuration instead."
            )
        self.prefix = keys.namespace(backend.key_prefix, backend.version, namespace)
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

    def name(self, generator: keys.KeyGenerator, session_key: str) -> bytes:
        """What a KEY_GENERATOR-like option makes of a session key, as bytes."""
        name = generator(session_key)
        if isinstance(name, str):
            name = name.encode()
        if not isinstance(name, bytes) or not name:
            raise TypeError(f"{generator!r} returned {name!r}: it must return non-empty bytes or str")
        return name

    # Sending -------------------------------------------------------------

    def execute(self, call: Call[T]) -> T:
        """Send ``call`` (retried by the RETRY policy) and read its reply."""
        if call.args is None:
            return call.parse(None)  # type: ignore[return-value]  # no reply, no follow-up
        acks = self.acks if call.needs_ack else None
        try:
            redis = self.redis_for(call.route)  # a cluster client connects when first made
            reply = self.retry.call_with_retry(
                partial(send, redis, call, acks), partial(self.after_failure, redis), self.is_retryable
            )
        except ResponseError as exc:
            if call.fallback is None or "syntax error" not in str(exc):
                raise errors.translate(exc) from exc
            return self.execute(call.fallback())
        except errors.REDIS_ERRORS as exc:
            raise errors.translate(exc) from exc
        result = call.parse(reply)
        return self.execute(result) if isinstance(result, Call) else result

    def execute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """Send ``calls`` in one pipeline per server (one round trip each, in order, not a
        transaction); a topology without pipelines of its own sends them one by one."""
        results: list[Any] = [None] * len(calls)
        for redis, indexes in self._by_client(calls):
            if not hasattr(redis, "connection_pool"):  # e.g. a cluster client: one at a time
                for index in indexes:
                    results[index] = self.execute(calls[index])
                continue
            pipe = redis.pipeline(transaction=False)
            for index in indexes:
                pipe.execute_command(*pipelined(calls[index]), **calls[index].options)
            acks = self._acks_for(pipe, [calls[index] for index in indexes])
            with errors.translated():
                replies = self.retry.call_with_retry(
                    pipe.execute, partial(self.after_failure, redis), self.is_retryable
                )
                if acks is not None:
                    acks.check(replies.pop())
            for index, reply in zip(indexes, replies, strict=True):
                result = calls[index].parse(reply)
                results[index] = self.execute(result) if isinstance(result, Call) else result
        return results

    async def aexecute_many(self, calls: list[Call[Any]]) -> list[Any]:
        """``execute_many`` on ``redis.asyncio`` (a thread if there is no asyncio twin)."""
        results: list[Any] = [None] * len(calls)
        for sync_redis, indexes in self._by_client(calls):
            try:
                redis = self.aredis(sync_redis)
            except aio.NotNative:
                for index in indexes:
                    results[index] = await self.aexecute(calls[index])
                continue
            pipe = redis.pipeline(transaction=False)
            for index in indexes:
                pipe.execute_command(*pipelined(calls[index]), **calls[index].options)
            acks = self._acks_for(pipe, [calls[index] for index in indexes])
            with errors.translated():
                replies = await self.aretry.call_with_retry(pipe.execute, aio.ignore, self.is_retryable)
                if acks is not None:
                    acks.check(replies.pop())
            for index, reply in zip(indexes, replies, strict=True):
                result = calls[index].parse(reply)
                results[index] = await self.aexecute(result) if isinstance(result, Call) else result
        return results

    def _acks_for(self, pipe: Any, calls: list[Call[Any]]) -> replicas.Acks | None:
        """MIN_REPLICAS_ACK's WAIT at the end of a pipeline that writes (its reply is last)."""
        if self.acks is None or not any(call.needs_ack for call in calls):
            return None
        pipe.execute_command("WAIT", self.acks.replicas, self.acks.timeout_ms)
        return self.acks

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

    async def aprepare(self) -> None:
        """Learn, without blocking the loop, the server facts a call builder needs."""

    # The contract of a storage mode: each operation is one Call, sent by either executor.

    def load(self, session_key: str) -> dict[str, Any] | None:
        return self.execute(self.load_call(session_key))

    def exists(self, session_key: str) -> bool:
        return self.execute(self.exists_call(session_key))

    def create(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        """Store a new session; ``False`` if a live one has the key."""
        return self.execute(self.create_call(session_key, session, ttl))

    def update(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        """Overwrite a live session; ``False`` if it is missing or expired (never resurrects)."""
        return self.execute(self.update_call(session_key, session, ttl))

    def delete(self, session_key: str) -> None:
        self.execute(self.delete_call(session_key))

    async def aload(self, session_key: str) -> dict[str, Any] | None:
        return await self.aexecute(self.load_call(session_key))

    async def aexists(self, session_key: str) -> bool:
        return await self.aexecute(self.exists_call(session_key))

    async def acreate(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        await self.aprepare()
        return await self.aexecute(self.create_call(session_key, session, ttl))

    async def aupdate(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        await self.aprepare()
        return await self.aexecute(self.update_call(session_key, session, ttl))

    async def adelete(self, session_key: str) -> None:
        await self.aexecute(self.delete_call(session_key))

    async def aclear_expired(self) -> None:
        """Sweep what ``clear_expired`` sweeps, on ``redis.asyncio``."""
        from .sweep import asweep_all

        try:
            with errors.translated():
                await asweep_all(self)
        except aio.NotNative:
            await sync_to_async(self.clear_expired)()

    def load_call(self, session_key: str) -> Call[dict[str, Any] | None]:
        raise NotImplementedError

    def exists_call(self, session_key: str) -> Call[bool]:
        raise NotImplementedError

    def create_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        raise NotImplementedError

    def update_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        raise NotImplementedError

    def delete_call(self, session_key: str) -> Call[None]:
        return self.delete_place_call(self.place(session_key))

    # A session's place: the Redis names that find it without its key (the index of a
    # user's sessions keeps places, never keys: see users.py).

    def place(self, session_key: str) -> tuple[bytes, ...]:
        raise NotImplementedError

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        raise NotImplementedError

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[None]:
        raise NotImplementedError

    def clear_expired(self) -> None:
        raise NotImplementedError

    def describe(self, session_key: str) -> dict[str, Any]:
        raise NotImplementedError

    def locate(self, session_key: str) -> tuple[bytes, ...]:
        """The Redis names a session key maps to."""
        raise NotImplementedError

    def decode(self, data: bytes | None) -> dict[str, Any] | None:
        """The session in stored bytes; None when missing, expired or unreadable."""
        if data is None:
            return None
        try:
            session, expires_at = self.codec.decode(data)
        except CorruptSession as exc:
            suspicious.warning("Unreadable session data in Redis (%s); starting an empty session.", exc)
            return None
        if expires_at is not None and expires_at <= time.time():
            return None
        return session
