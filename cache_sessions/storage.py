"""Session storage: what both storage modes share, and the contract each fills in.

A storage mode turns an operation into a ``Call`` (``calls.py``): one command
(often an EVALSHA) and the function that reads its reply. ``Sessions`` sends
it with the executor it inherits (``executor.py``: sync and async, the RETRY
policy, errors translated). Every operation is one round trip.

``strings.StringSessions`` keeps each session under a key of its own and lets
Redis expire it; ``buckets.HashSessions`` keeps sessions as fields of bucket
hashes. Both talk to Redis through the django-redis client of the alias
(``client.get_client()``), so they share its connection pool, on our
``SessionClient`` and on django-redis's stock clients alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from . import aio, errors, keys
from .calls import Call
from .errors import CorruptSession
from .executor import Executor

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache
    from django_redis.client import DefaultClient

    from .conf import SessionOptions

suspicious = logging.getLogger("django.security.SuspiciousSession")


class Sessions(Executor):
    """What both storage modes share: the options, the codec, the namespace; and, from
    ``Executor``, where names live and how calls are sent."""

    def __init__(self, client: DefaultClient, backend: BaseCache, options: SessionOptions, namespace: str = "s"):
        super().__init__(client, options)
        self.options = options
        self.codec = options.codec
        self.prefix = keys.namespace(backend.key_prefix, backend.version, namespace)

    def name(self, generator: keys.KeyGenerator, session_key: str) -> bytes:
        """What a KEY_GENERATOR-like option makes of a session key, as bytes."""
        name = generator(session_key)
        if isinstance(name, str):
            name = name.encode()
        if not isinstance(name, bytes) or not name:
            raise TypeError(f"{generator!r} returned {name!r}: it must return non-empty bytes or str")
        return name

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

    def delete_call(self, session_key: str) -> Call[bool]:
        """Delete a session; the reply: whether it was there."""
        return self.delete_place_call(self.place(session_key))

    # A session's place: the Redis names that find it without its key (the index of a
    # user's sessions keeps places, never keys: see users.py).

    def place(self, session_key: str) -> tuple[bytes, ...]:
        raise NotImplementedError

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        raise NotImplementedError

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
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
