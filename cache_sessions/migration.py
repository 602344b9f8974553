"""Moving sessions from where they used to live (``MIGRATE_FROM``) into ours.

Two ways, the same move: the read-through fallback (``Fallback``), which
``SessionStore`` asks only when a valid key is not in ours (a hit costs
nothing more), and the bulk copy of ``manage.py migratesessions``
(``copy_all``). A session found alive in the old store is created in ours
with its remaining life, through the storage's atomic, idempotent create
(so a session already in ours, which is newer, is never overwritten), then
deleted from the old store. An expired one is left where it is and never
comes back. Signed-cookie sessions have no key of their own: they become a
new session here, created by the request's own save (``Moved.new_key``).
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from . import errors
from .errors import SessionStoreError, SessionStoreUnavailable, UnencodableSession
from .sources import Entry, Found, Source, Unreadable, build_source, expiry_of, suspicious
from .storage import index
from .storage.base import Storage
from .storage.calls import Call, adrive, drive

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


@contextmanager
def _old_store(source: Source) -> Iterator[None]:
    """Failures of the old store as ours: retry later (503), never "no session"."""
    try:
        yield
    except SessionStoreError:
        raise  # already ours (an old cache_sessions alias)
    except (RedisError, TimeoutError) as exc:
        raise errors.translate(exc) from exc
    except (DatabaseError, OSError, ConnectionInterrupted) as exc:  # the last: django-redis's cache API
        raise SessionStoreUnavailable(f"the old session store ({source}) failed: {exc!r}") from exc


def remaining(found: Found, now: float | None = None) -> int:
    """Whole seconds ``found`` has left to live (<= 0: expired)."""
    now = time.time() if now is None else now
    # The store's own expiry was set from the session's; without it, Django's rule from now.
    expires_at = found.expires_at if found.expires_at is not None else expiry_of(found.data, now)
    return math.ceil(expires_at - now)


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
        with _old_store(self.source):
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
        with _old_store(self.source):
            self.source.delete(key)
        return None if moved is None else Moved(moved)

    async def aload(self, key: str) -> Moved | None:
        if not self.source.accepts(key):
            return None
        with _old_store(self.source):
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
        with _old_store(self.source):
            await self.source.adelete(key)
        return None if moved is None else Moved(moved)

    def exists(self, key: str) -> bool:
        with _old_store(self.source):
            return self.source.accepts(key) and self._alive(self.source.read(key)) is not None

    async def aexists(self, key: str) -> bool:
        with _old_store(self.source):
            return self.source.accepts(key) and self._alive(await self.source.aread(key)) is not None

    def delete(self, key: str) -> None:
        """A logout must not leave the old copy for the fallback to bring back."""
        if self.source.accepts(key):
            with _old_store(self.source):
                self.source.delete(key)

    async def adelete(self, key: str) -> None:
        if self.source.accepts(key):
            with _old_store(self.source):
                await self.source.adelete(key)


@dataclass
class CopyReport:
    seen: int = 0
    copied: int = 0
    existing: int = 0  # already in ours (newer): not overwritten
    expired: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> sessions
    seconds: float = 0.0
    finished: bool = True

    @property
    def rate(self) -> float:
        return self.seen / self.seconds if self.seconds else 0.0


def copy_all(
    source: Source,
    sessions: Storage,
    *,
    batch_size: int = 500,
    max_seconds: float | None = None,
    dry_run: bool = False,
    progress: Callable[[CopyReport], None] | None = None,
) -> CopyReport:
    """Move every live session of ``source`` into ``sessions`` (``BulkUnsupported`` if it cannot list them).

    Resumable: what a batch moved is deleted from the old store before the next
    batch, so a run interrupted (or stopped by ``max_seconds``) and started again
    goes on with what is left; a session copied but not yet deleted is found in
    ours the second time and not overwritten.
    """
    report = CopyReport()
    started = time.monotonic()
    with _old_store(source):
        batches = source.walk(batch_size)
        for batch in batches:
            moved = _copy_batch(batch, sessions, report, dry_run)
            if moved and not dry_run:
                source.delete_many(moved)
            if progress is not None:
                progress(report)
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                report.finished = False
                break
    report.seconds = time.monotonic() - started
    return report


def _copy_batch(batch: list[Entry], sessions: Storage, report: CopyReport, dry_run: bool) -> list[str]:
    """Create the live sessions of a batch in ours; the keys whose old copy should go (copied, or
    ours already has a newer one)."""
    keys, calls, live = [], [], []
    for entry in batch:
        if entry.found is None and entry.error is None:
            continue  # gone meanwhile (expired, moved by a request), or a name SCAN returned twice
        report.seen += 1
        if entry.error is not None:
            report.failed[entry.error] += 1
            continue
        assert entry.found is not None
        try:
            ttl = remaining(entry.found)
        except Unreadable as exc:
            report.failed[str(exc)] += 1
            continue
        if ttl <= 0 or not entry.found.data:
            report.expired += 1
            continue
        if dry_run:
            report.copied += 1
            continue
        live.append((entry.key, entry.found.data, ttl))
    # Their records first (one pipeline per server), each session then created with its mark.
    drive(index.writing(sessions, index.moved_records(sessions, live)), sessions.execute_many)
    for key, data, ttl in live:
        try:
            calls.append(sessions.create_call(key, data, ttl))
        except UnencodableSession as exc:
            report.failed[_reason(exc)] += 1
            continue
        keys.append(key)
    moved = []
    for key, created in zip(keys, _pipelined(sessions, calls), strict=True):
        if created:
            report.copied += 1
        else:
            report.existing += 1
        moved.append(key)
    return moved


def _reason(exc: Exception) -> str:
    """A failure's reason without the session's own values: ``session['cart'] cannot be stored``."""
    text = str(exc)
    return text.split(":", 1)[0] if text.startswith("session[") else text


def _pipelined(sessions: Storage, calls: list[Call[bool]]) -> list[bool]:
    """Send ``calls`` in one pipeline per server: one round trip for a batch instead of one per session.

    The first call goes alone (it loads a script, learns the server's facts); a reply that is an
    error (NOSCRIPT after a restart, an old server's "syntax error") or asks for a follow-up is
    handed to ``sessions.execute``, which knows what to do with it.
    """
    if not calls:
        return []
    results: list[bool | None] = [sessions.execute(calls[0])] + [None] * (len(calls) - 1)
    groups: dict[int, tuple[Any, list[int]]] = {}
    for position in range(1, len(calls)):
        if calls[position].args is None or not sessions.topology.pipelines:  # (a cluster: one by one)
            results[position] = sessions.execute(calls[position])
            continue
        redis = sessions.redis_for(calls[position].route)
        groups.setdefault(id(redis), (redis, []))[1].append(position)
    for redis, positions in groups.values():
        pipe = redis.pipeline(transaction=False)
        for position in positions:
            args = calls[position].args
            assert args is not None
            pipe.execute_command(*args, **calls[position].options)
        with errors.translated():
            replies = pipe.execute(raise_on_error=False)
        for position, reply in zip(positions, replies, strict=True):
            if isinstance(reply, Exception):
                results[position] = sessions.execute(calls[position])
                continue
            parsed = calls[position].parse(reply)
            results[position] = sessions.execute(parsed) if isinstance(parsed, Call) else parsed
    return [bool(result) for result in results]
