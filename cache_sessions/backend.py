"""The session engine: ``SESSION_ENGINE = "cache_sessions.backend"``.

Sessions live in the cache alias named by ``SESSION_CACHE_ALIAS`` (a
django-redis cache), read when the store is used, so ``override_settings``
works. Each contract method is one Redis round trip.

When Redis cannot serve a request, the store raises (``errors.py``); it
never pretends the session is empty, which would log the user out. It
remembers the failure in ``unavailable`` so that ``middleware.py`` can answer
503 instead of 500, and, when that middleware allows it for a request that
only reads (``DEGRADED_READS``), loads as an empty *read-only* session that
writes nothing (save, create, delete raise) and never touches the cookie.

With ``MIGRATE_FROM`` on the alias, a valid key that is not in Redis is
looked up in the old store and moved here (``migration/fallback.py``): only on a
miss, so a session already here costs nothing more.

Deleting a session (with its index record) and ``cycle_key`` live in
``ending.py``, which ``SessionStore`` inherits.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.utils.module_loading import import_string

from . import keys
from .engine.ending import EndingStore
from .errors import SessionStoreUnavailable
from .migration.fallback import Moved, fallback_for
from .storage import index, sweep
from .storage.calls import adrive, drive
from .storage.registry import sessions_for

logger = logging.getLogger("cache_sessions")

# Collisions of 32 random [a-z0-9] characters do not happen; a long run of
# them means something else is wrong (Django's cache engine stops at 10,000).
MAX_CREATE_ATTEMPTS = 100


class SessionStore(EndingStore):
    def __init__(self, session_key: str | None = None) -> None:
        # SessionBase.__init__ minus resolving SESSION_SERIALIZER, which this
        # engine never uses (values are msgpack): see the ``serializer`` property.
        self._session_key = session_key
        self.accessed = False
        self.modified = False
        self.unavailable: SessionStoreUnavailable | None = None  # the store's last "try again later"
        self.degraded_reads = False  # set by the middleware for requests that only read
        self.degraded = False  # loaded as an empty read-only session because the store was unavailable
        # Set by the async middleware, which saved with asave() already: True, or the UpdateError it got.
        self.presaved: bool | UpdateError = False
        # USER_SESSIONS: the user whose index lists the session as loaded, and what
        # USER_SESSION_METADATA keeps of the request (set by the middleware).
        self.indexed: tuple[str, str] | None = None  # (session key, user id) of an indexed session as loaded
        self.request_meta: dict[str, str] | None = None

    @cached_property
    def serializer(self) -> Any:
        """Django's SESSION_SERIALIZER, for code that calls ``encode()``/``decode()``."""
        return import_string(settings.SESSION_SERIALIZER)

    def _validate_session_key(self, key: Any) -> bool:
        if keys.is_valid_session_key(key):
            return True
        if key and (fallback := fallback_for(self._storage)) is not None and fallback.accepts(key):
            return True  # a signed-cookie session of MIGRATE_FROM: moved on load, under a new key
        if key and self._storage.options.log_key_error:
            logger.warning("Ignoring a malformed session key from the client (%d characters).", len(str(key)))
        return False

    def _get_new_session_key(self) -> str:
        # No EXISTS round trip: create() stores atomically (SET NX / a script) and retries on collision.
        return keys.new_session_key()

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    # Each contract method has an async twin below: the same steps, with the storage's
    # async operations (``redis.asyncio``, no thread hop) where the sync ones do I/O.

    def load(self) -> dict[str, Any]:
        key = self.session_key
        try:
            session = self._storage.load(key) if key is not None and keys.is_valid_session_key(key) else None
            if session is None and key and (fallback := fallback_for(self._storage)) is not None:
                return self._moved(fallback.load(key))
        except SessionStoreUnavailable as exc:
            return self._unavailable_on_load(exc)
        return self._loaded(session)

    def _moved(self, moved: Moved | None) -> dict[str, Any]:
        """A session brought over from the old store (or None: not there, or expired)."""
        if moved is None or not moved.new_key:
            return self._loaded(None if moved is None else moved.data)
        # Saved under a new key at the end of the request; the middleware sends its cookie.
        self._session_key = None
        self.modified = True
        return moved.data

    def _load_foreign(self) -> None:
        """Before a save: a signed-cookie session not loaded yet is moved first (its key goes)."""
        key = self.session_key
        if key is not None and self._storage.options.migrate_from is not None and not keys.is_valid_session_key(key):
            self._get_session()  # type: ignore[attr-defined]  # Django's, not in its stubs

    def _loaded(self, session: dict[str, Any] | None) -> dict[str, Any]:
        if session is None:
            self._session_key = None
            return {}
        user = session.get(index.USER_KEY)
        if user and self.session_key:
            if index.MARK in session:
                self.indexed = (self.session_key, str(user))
            elif self._storage.options.user_sessions:
                # No record (older than USER_SESSIONS, or never saved since): whatever the
                # middleware, this request saves it, and the save writes the record first.
                self.modified = True
        return session

    def _unavailable_on_load(self, exc: SessionStoreUnavailable) -> dict[str, Any]:
        self.unavailable = exc
        if not self.degraded_reads:
            raise exc
        logger.warning("Session store unavailable (%s): serving a read-only empty session.", exc)
        self.degraded = True
        return {}

    def exists(self, session_key: str) -> bool:
        if not keys.is_valid_session_key(session_key):
            return False
        if self._remembering(self._storage.exists, session_key):
            return True
        fallback = fallback_for(self._storage)
        return fallback is not None and bool(self._remembering(fallback.exists, session_key))

    def create(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(f"No free session key after {MAX_CREATE_ATTEMPTS} attempts.")

    def save(self, must_create: bool = False) -> None:
        if self.presaved:
            presaved, self.presaved = self.presaved, False
            if isinstance(presaved, UpdateError):
                raise presaved
            return
        self._load_foreign()
        if self.session_key is None:
            return self.create()
        session = self._get_session(no_load=must_create)  # type: ignore[attr-defined]  # Django's, not in its stubs
        self._refuse_if_degraded()  # after the load, which is what finds the store unavailable
        ttl = self._ttl(session)
        storage = self._storage
        with storage.operation():  # the index record and the write: one OPERATION_TIMEOUT (Redis Cluster)
            # The index record first: never a session it misses.
            if index.entry_due(storage.options, session, must_create, ttl):
                self._remembering(drive, self._indexing(session, ttl, must_create), storage.execute_many)
            if must_create:
                if not self._remembering(storage.create, self.session_key, session, ttl):
                    raise CreateError
            elif not self._remembering(storage.update, self.session_key, session, ttl):
                raise UpdateError

    def index_entry_due(self) -> bool:
        """Whether saving now would refresh this session's index entry (USER_SESSIONS):
        only for a session this request has loaded, never a reason to load one."""
        loaded: dict[str, Any] | None = getattr(self, "_session_cache", None)
        return loaded is not None and not self.degraded and index.entry_due(self._storage.options, loaded, False)

    def _indexing(self, session: dict[str, Any], ttl: int, created: bool) -> index.Batches:
        assert self.session_key is not None
        return index.indexing(self._storage, self.session_key, session, ttl, created, self.request_meta)

    def _ttl(self, session: dict[str, Any]) -> int:
        if self.session_key is None:  # loading just now found the session gone
            raise UpdateError
        # The common case needs neither timezone.now() nor get_expiry_age()'s parsing.
        return int(self.get_expiry_age() if session.get("_session_expiry") else self.get_session_cookie_age())

    @classmethod
    def clear_expired(cls) -> None:
        sweep.clear_expired(sessions_for(settings.SESSION_CACHE_ALIAS))

    # Async twins ---------------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        key = self.session_key
        try:
            session = await self._storage.aload(key) if key is not None and keys.is_valid_session_key(key) else None
            if session is None and key and (fallback := fallback_for(self._storage)) is not None:
                return self._moved(await fallback.aload(key))
        except SessionStoreUnavailable as exc:
            return self._unavailable_on_load(exc)
        return self._loaded(session)

    async def aexists(self, session_key: str) -> bool:
        if not keys.is_valid_session_key(session_key):
            return False
        if await self._aremembering(self._storage.aexists, session_key):
            return True
        fallback = fallback_for(self._storage)
        return fallback is not None and bool(await self._aremembering(fallback.aexists, session_key))

    async def acreate(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(f"No free session key after {MAX_CREATE_ATTEMPTS} attempts.")

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is not None and not keys.is_valid_session_key(self.session_key):
            await self._aget_session()  # type: ignore[attr-defined]  # a signed-cookie session: moved first
        if self.session_key is None:
            return await self.acreate()
        session = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined]
        self._refuse_if_degraded()
        ttl = self._ttl(session)
        storage = self._storage
        with storage.operation():  # the index record and the write: one OPERATION_TIMEOUT (Redis Cluster)
            if index.entry_due(storage.options, session, must_create, ttl):
                await storage.aprepare()
                await self._aremembering(adrive, self._indexing(session, ttl, must_create), storage.aexecute_many)
            if must_create:
                if not await self._aremembering(storage.acreate, self.session_key, session, ttl):
                    raise CreateError
            elif not await self._aremembering(storage.aupdate, self.session_key, session, ttl):
                raise UpdateError

    @classmethod
    async def aclear_expired(cls) -> None:
        await sweep.aclear_expired(sessions_for(settings.SESSION_CACHE_ALIAS))
