"""Ending sessions: what ``SessionStore`` (``backend.py``) inherits to delete a session
(with its index record) and to move it to a new key (``cycle_key``) without bringing
back a session that was deleted while the request ran.

``cycle_key`` (``login()``, ``update_session_auth_hash()``) carries a session's data
over to a new key: it creates the new session, then deletes the old one. If the old
one was deleted meanwhile (``revoke_all_sessions``, a logout in another tab), Django's
own ``cycle_key`` would bring its data back under the new key. Here the delete tells
whether the old session was still there; if it was not, the new one is deleted too
(with its record), the request's session is emptied (its cookie is deleted) and
``SessionInterrupted`` is raised: Django's answer, a 400, to "the session was
deleted before the request completed".

Against ``revoke_all_sessions``, which reads the user's records (R1), deletes those
sessions (R2), then removes the records (R3), while ``cycle_key`` writes the new
session's record (C1), stores the new session (C2) and deletes the old one (C3):

- R2 reaches the old session before C3: C3 finds it gone and the new session is
  ended, whether or not R1 saw its record.
- R1 comes after C1: the revoke lists the new session too and ends it in R2 (at C2's
  place, after C2 or before it; before it, C3 then finds the old session gone as well).
- C3 comes before R2 reaches the old session and R1 before C1: the new session was
  made after the revoke read the index, and holds data of a session that was still
  alive at C3; the revoke counts the old session, which C3 deleted. It is a login that
  overtook the revoke, like one made just after it: to keep a user out, also stop
  them from logging in (``is_active = False``, which Django checks on every request).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.exceptions import SessionInterrupted

from .. import keys
from ..errors import SessionStoreUnavailable
from ..migration.fallback import fallback_for
from ..storage import index
from ..storage.base import Storage
from ..storage.calls import Call
from ..storage.registry import sessions_for


class EndingStore(SessionBase):
    unavailable: SessionStoreUnavailable | None = None  # the store's last "try again later"
    indexed: tuple[str, str] | None = None  # (session key, user id) of an indexed session as loaded
    degraded = False  # loaded as an empty read-only stand-in because the store was unavailable

    @cached_property
    def _storage(self) -> Storage:
        # Looked up on first use, then kept for this store's life (one request).
        return sessions_for(settings.SESSION_CACHE_ALIAS)

    def _remembering(self, operation: Any, *args: Any) -> Any:
        try:
            return operation(*args)
        except SessionStoreUnavailable as exc:
            self.unavailable = exc
            raise

    async def _aremembering(self, operation: Any, *args: Any) -> Any:
        try:
            return await operation(*args)
        except SessionStoreUnavailable as exc:
            self.unavailable = exc
            raise

    def _refuse_if_degraded(self) -> None:
        # A stand-in is read-only: no save over the real session, no create (cycle_key), no delete.
        if self.degraded:
            assert self.unavailable is not None
            raise self.unavailable

    def delete(self, session_key: str | None = None) -> None:
        self._delete(session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        await self._adelete(session_key)

    def _delete(self, session_key: str | None) -> bool:
        """Delete a session (and its record, if this store loaded it indexed: one pipeline,
        the session first); whether it was still here."""
        self._refuse_if_degraded()
        session_key = self._key_to_delete(session_key)
        if session_key is None:
            return False
        storage = self._storage
        existed = self._remembering(storage.execute_many, self._deletion(session_key))[0]
        if (fallback := fallback_for(storage)) is not None:
            self._remembering(fallback.delete, session_key)  # or the fallback would bring it back
        return bool(existed)

    async def _adelete(self, session_key: str | None) -> bool:
        self._refuse_if_degraded()
        session_key = self._key_to_delete(session_key)
        if session_key is None:
            return False
        storage = self._storage
        if self.indexed:  # its index record goes too: the index's limit, learnt on asyncio
            await self._aremembering(storage.aprepare)
        existed = (await self._aremembering(storage.aexecute_many, self._deletion(session_key)))[0]
        if (fallback := fallback_for(storage)) is not None:
            await self._aremembering(fallback.adelete, session_key)
        return bool(existed)

    def _deletion(self, session_key: str) -> list[Call[Any]]:
        calls: list[Call[Any]] = [self._storage.delete_call(session_key)]
        if self.indexed and self.indexed[0] == session_key:
            calls.append(index.remove_call(self._storage, self.indexed[1], session_key))
            self.indexed = None
        return calls

    def _key_to_delete(self, session_key: str | None) -> str | None:
        session_key = self.session_key if session_key is None else session_key
        return session_key if keys.is_valid_session_key(session_key) else None

    def cycle_key(self) -> None:
        data = self._session  # type: ignore[attr-defined]  # Django's, not in its stubs
        key = self.session_key
        self.create()
        self._session_cache = data
        if key and keys.is_valid_session_key(key) and not self._delete(key):
            self._remembering(self._storage.execute_many, self._interrupted(data))
            raise SessionInterrupted(_DELETED_MEANWHILE)

    async def acycle_key(self) -> None:
        data = await self._aget_session()  # type: ignore[attr-defined]  # Django's, not in its stubs
        key = self.session_key
        await self.acreate()
        self._session_cache = data
        if key and keys.is_valid_session_key(key) and not await self._adelete(key):
            await self._aremembering(self._storage.aexecute_many, self._interrupted(data))
            raise SessionInterrupted(_DELETED_MEANWHILE)

    def _interrupted(self, data: dict[str, Any]) -> list[Call[Any]]:
        """The calls that end the new session (and its record) of a ``cycle_key`` whose old
        session was gone; this store is left empty, so the response deletes the cookie."""
        new_key = self.session_key
        assert new_key is not None
        calls: list[Call[Any]] = [self._storage.delete_call(new_key)]
        user = data.get(index.USER_KEY)
        if user and self._storage.options.user_sessions:
            calls.append(index.remove_call(self._storage, str(user), new_key))
        self._session_key = None
        self._session_cache = {}
        return calls


_DELETED_MEANWHILE = (
    "The session was deleted while this request ran (revoked, or logged out in a concurrent "
    "request): it is not carried over to a new key."
)
