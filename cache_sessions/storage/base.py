"""Session storage: what both storage modes share, and the contract each fills in.

A storage mode turns an operation into a ``Call`` (``calls.py``): one command
(often an EVALSHA) and the function that reads its reply. ``Storage`` sends
it with the executor it inherits (``executor.py``: sync and async, errors
translated), given the alias's topology (``topology/``: where each name lives,
how a call is retried, what a failure means). Every operation is one round trip.

``strings.StringStorage`` keeps each session under a key of its own and lets
Redis expire it; ``buckets.HashStorage`` keeps sessions as fields of bucket
hashes. Both talk to Redis through the django-redis client of the alias
(``client.get_client()``), so they share its connection pool, on our
``SessionClient`` and on django-redis's stock clients alike. ``registry.py``
builds the storage of an alias; ``sweep.py`` removes expired sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from .. import errors, keys
from ..errors import CorruptSession
from ..topology import server_facts
from ..topology.async_clients import NotNative
from .calls import Call
from .executor import Executor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.core.cache.backends.base import BaseCache
    from redis import Redis

    from ..topology.base import Topology
    from .options import SessionOptions

suspicious = logging.getLogger("django.security.SuspiciousSession")


class Storage(Executor):
    """What both storage modes share: the options, the codec, the namespace; from
    ``Executor``, how calls are sent; and, from the topology, where names live."""

    def __init__(
        self, client: Any, backend: BaseCache, options: SessionOptions, topology: Topology, namespace: str = "s"
    ) -> None:
        super().__init__(topology, options.acks)
        self.client = client  # the alias's django-redis client
        self.options = options
        self.codec = options.codec
        self.prefix = keys.namespace(backend.key_prefix, backend.version, namespace)
        self._inline_limit: tuple[int, int] | None = None  # (server_facts.generation, limit)
        self._prepared = -1  # the server_facts.generation whose facts aprepare() has learnt
        # The learning a load started in each loop (``_learn_soon``), until it ends.
        self._learning: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )

    def name(self, generator: keys.KeyGenerator, session_key: str) -> bytes:
        """What a KEY_GENERATOR-like option makes of a session key, as bytes."""
        name = generator(session_key)
        if isinstance(name, str):
            name = name.encode()
        if not isinstance(name, bytes) or not name:
            raise TypeError(f"{generator!r} returned {name!r}: it must return non-empty bytes or str")
        return name

    # Where names live: the topology's answers, for what walks the servers.

    def redis(self) -> Redis:
        return self.topology.redis()

    def redis_for(self, name: bytes) -> Redis:
        return self.topology.redis_for(name)

    def servers(self) -> list[Redis]:
        return self.topology.servers()

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        return self.topology.by_server(names)

    def aredis(self, sync_redis: Redis) -> Any:
        return self.topology.aredis(sync_redis)

    def operation(self) -> contextlib.AbstractContextManager[None]:
        """What bounds one session operation of several calls (a save and its index record,
        a revoke's batches): on Redis Cluster, one OPERATION_TIMEOUT for them all."""
        return self.topology.operation()

    # What call builders need to know of the servers, learnt once per process (``server_facts``).

    def needs_limits(self) -> bool:
        """Whether calls need the servers' listpack limit (``inline_limit``): here, for the
        buckets of the user index (``USER_SESSIONS``) unless ``HASH_MAX_INLINE`` says it."""
        return self.options.user_sessions and self.options.hash_max_inline is None

    def needs_software(self) -> bool:
        """Whether calls need to know which software each server is (hash mode's field TTLs)."""
        return False

    def inline_limit(self) -> int:
        """The largest value kept inside a bucket: ``HASH_MAX_INLINE``, else the server's
        hash-max-listpack-value (read once per process and server)."""
        if self.options.hash_max_inline is not None:
            return self.options.hash_max_inline
        known = self._inline_limit
        if known is not None and known[0] == server_facts.generation:
            return known[1]  # kept: asking every server's facts again would cost every write
        with errors.translated():
            # Every server must keep the bucket compact: the smallest limit wins.
            limit = min(
                server_facts.listpack_limits(redis)[1] or server_facts.DEFAULT_INLINE_LIMIT for redis in self.servers()
            )
        self._inline_limit = (server_facts.generation, limit)
        return limit

    async def aprepare(self, quiet: bool = False) -> None:
        """Learn, without blocking the loop, the server facts a call builder needs (once per
        process and server; ``quiet``: a failure is left to the call itself, which is retried).
        The servers are found and asked on the loop's asyncio clients (``Topology.afacts``:
        on Redis Cluster the sync client is not even made); what is learnt is kept here too,
        so that building a call asks no server (``learnt``)."""
        generation = server_facts.generation
        if self._prepared == generation:
            return
        limits, software = self.needs_limits(), self.needs_software()
        if limits or software:
            try:
                records = await self._alearn(limits, software)
            except errors.REDIS_ERRORS as exc:
                if quiet:
                    return
                raise errors.translate(exc) from exc
            self.learnt(records, generation)
        self._prepared = generation

    async def _alearn(self, limits: bool, software: bool) -> list[server_facts.ServerFacts]:
        try:
            servers = await self.topology.afacts()
        except NotNative:
            return await sync_to_async(self._learn)(limits, software)
        for facts, client in servers:
            if limits:
                await server_facts.alistpack_limits(facts, client)
            if software:
                await server_facts.asoftware(facts, client)
        return [facts for facts, _ in servers]

    def _learn(self, limits: bool, software: bool) -> list[server_facts.ServerFacts]:
        """``_alearn`` on the sync clients (in a thread: a pool without an asyncio twin)."""
        servers = self.servers()
        for redis in servers:
            if limits:
                server_facts.listpack_limits(redis)
            if software:
                server_facts.software(redis)
        return [server_facts.of(redis) for redis in servers]

    def learnt(self, records: list[server_facts.ServerFacts], generation: int) -> None:
        """Keep what ``records`` (one per server) now say (``inline_limit``'s answer)."""
        limits = [facts.listpack_limits for facts in records]
        if records and not any(limit is None for limit in limits):
            limit = min((pair[1] if pair else None) or server_facts.DEFAULT_INLINE_LIMIT for pair in limits)
            self._inline_limit = (generation, limit)

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

    # On asyncio, what a write's call builder must know of the servers is learnt first when the
    # process does not know it yet, within the write's bound (OPERATION_TIMEOUT on Redis Cluster).

    async def aload(self, session_key: str) -> dict[str, Any] | None:
        self._learn_soon()
        return await self.aexecute(self.load_call(session_key))

    def _learn_soon(self) -> None:
        """Start learning what writes need of the servers (``aprepare``) without waiting for it:
        a load needs none of it (only to stop fetching the overflow key with every field), and
        must not wait on a server it does not read (a hung primary of a cluster)."""
        if self._prepared == server_facts.generation:  # (aprepare marks it so at once where there is nothing to learn)
            return
        loop = asyncio.get_running_loop()
        if loop in self._learning:
            return
        # In a context of its own: outside the deadline of the operation that started it.
        task = loop.create_task(self.aprepare(quiet=True), context=contextvars.Context())
        self._learning[loop] = task
        task.add_done_callback(self._learnt_soon)

    def _learnt_soon(self, task: asyncio.Task[None]) -> None:
        self._learning.pop(task.get_loop(), None)
        if not task.cancelled():
            task.exception()  # retrieved: a write that needs these facts learns them and says what failed

    async def aexists(self, session_key: str) -> bool:
        return await self.aexecute(self.exists_call(session_key))

    async def acreate(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        with self.operation():
            await self.aprepare()
            return await self.aexecute(self.create_call(session_key, session, ttl))

    async def aupdate(self, session_key: str, session: Mapping[str, Any], ttl: int) -> bool:
        with self.operation():
            await self.aprepare()
            return await self.aexecute(self.update_call(session_key, session, ttl))

    async def adelete(self, session_key: str) -> None:
        await self.aexecute(self.delete_call(session_key))

    def load_call(self, session_key: str) -> Call[dict[str, Any] | None]:
        raise NotImplementedError

    def exists_call(self, session_key: str) -> Call[bool]:
        raise NotImplementedError

    def create_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        raise NotImplementedError

    def update_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        raise NotImplementedError

    def delete_call(self, session_key: str) -> Call[bool]:
        """Delete a session; the reply: whether it was there."""
        return self.delete_place_call(self.place(session_key))

    # A session's place: the Redis names that find it without its key (the index of a
    # user's sessions keeps places, never keys: see ``index.py``).

    def place(self, session_key: str) -> tuple[bytes, ...]:
        raise NotImplementedError

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        raise NotImplementedError

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
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
