"""Moving sessions from where they used to live (``MIGRATE_FROM``) into ours: the read-through.

Two ways, the same move: the read-through fallback (``Fallback``, here), which
``SessionStore`` asks only when a valid key is not in ours (a hit costs
nothing more), and the bulk copy of ``manage.py migratesessions``
(``copy.copy_all``). A session found alive in the old store is created in ours
with its remaining life, through the storage's atomic, idempotent create
(so a session already in ours, which is newer, is never overwritten), then
deleted from the old store. An expired one is left where it is and never
comes back. Signed-cookie sessions have no key of their own: they become a
new session here, created by the request's own save (``Moved.new_key``).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ..errors import UnencodableSession
from ..storage import index
from ..storage.base import Storage
from ..storage.calls import adrive, drive
from .base import Found, Source, Unreadable, old_store, remaining, suspicious
from .registry import build_source

logger = logging.getLogger("cache_sessions")
_fallbacks: weakref.WeakKeyDictionary[Storage, Fallback] = weakref.WeakKeyDictionary()


def fallback_for(sessions: Storage) -> Fallback | None:
    """The fallback of a storage whose alias has ``MIGRATE_FROM`` (built once per storage), else None."""
    spec = sessions.options.migrate_from
    if spec is None:
        return None
    fallback = _fallbacks.get(sessions)
    if fallback is None:
        fallback = _fallbacks[sessions] = Fallback(sessions, build_source(spec, sessions, settings.SESSION_CACHE_ALIAS))
    return fallback


@dataclass(frozen=True)
class Moved:
    data: dict[str, Any]
    new_key: bool = False  # True: the caller must drop the old key and save under a new one


class Fallback:
    """Read-through to the old store for keys ours does not have."""

    def __init__(self, sessions: Storage, source: Source) -> None:
        self.sessions, self.source = sessions, source

    def accepts(self, cookie: object) -> bool:
        """Whether a cookie ours refuses is still a session of the old store (a signed cookie)."""
        return self.source.new_key and isinstance(cookie, str) and self.source.accepts(cookie)

    def _alive(self, found: Found | None) -> dict[str, Any] | None:
        if found is None or not found.data:
            return None
        try:
            if remaining(found) <= 0:
                return None  # expired sessions are not resurrected
        except Unreadable as exc:
            suspicious.warning("Unreadable session in the old session store (%s): not moved.", exc)
            return None
        return found.data

    def load(self, key: str) -> Moved | None:
        if not self.source.accepts(key):
            return None
        with old_store(self.source):
            found = self.source.read(key)
        data = self._alive(found)
        if data is None or found is None:
            # Gone from the old store: maybe moved by another request since ours said no. Ask ours again.
            again = self.sessions.load(key) if not self.source.new_key else None
            return None if again is None else Moved(again)
        if self.source.new_key:
            return Moved(data, new_key=True)
        try:
            drive(index.moving(self.sessions, key, data, remaining(found)), self.sessions.execute_many)
            created = self.sessions.create(key, data, remaining(found))
        except UnencodableSession as exc:
            logger.warning("A session of %s cannot be stored here (%s): not moved.", self.source, exc)
            return None
        moved = data if created else self.sessions.load(key)  # not created: another request moved it first
        with old_store(self.source):
            self.source.delete(key)
        return None if moved is None else Moved(moved)

    async def aload(self, key: str) -> Moved | None:
        if not self.source.accepts(key):
            return None
        with old_store(self.source):
            found = await self.source.aread(key)
        data = self._alive(found)
        if data is None or found is None:
            again = await self.sessions.aload(key) if not self.source.new_key else None
            return None if again is None else Moved(again)
        if self.source.new_key:
            return Moved(data, new_key=True)
        try:
            await self.sessions.aprepare()
            await adrive(index.moving(self.sessions, key, data, remaining(found)), self.sessions.aexecute_many)
            created = await self.sessions.acreate(key, data, remaining(found))
        except UnencodableSession as exc:
            logger.warning("A session of %s cannot be stored here (%s): not moved.", self.source, exc)
            return None
        moved = data if created else await self.sessions.aload(key)
        with old_store(self.source):
            await self.source.adelete(key)
        return None if moved is None else Moved(moved)

    def exists(self, key: str) -> bool:
        with old_store(self.source):
            return self.source.accepts(key) and self._alive(self.source.read(key)) is not None

    async def aexists(self, key: str) -> bool:
        with old_store(self.source):
            return self.source.accepts(key) and self._alive(await self.source.aread(key)) is not None

    def delete(self, key: str) -> None:
        """A logout must not leave the old copy for the fallback to bring back."""
        if self.source.accepts(key):
            with old_store(self.source):
                self.source.delete(key)

    async def adelete(self, key: str) -> None:
        if self.source.accepts(key):
            with old_store(self.source):
                await self.source.adelete(key)
