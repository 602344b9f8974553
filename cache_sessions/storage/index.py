"""The index of users' sessions (``OPTIONS["USER_SESSIONS"]``): its format, and the
calls that keep it (``backend.py`` and ``migration/`` send them; ``engine/user_sessions.py``
reads them for the API; ``backfill.py`` fills it for sessions older than it).

The index is bucketed like hash-mode sessions, for the same reason (a Redis key
costs ~100 bytes of bookkeeping): a user is a field (8 bytes of BLAKE2b of the
user id) of a user bucket ``<KEY_PREFIX>:s<VERSION>:u{<crc32 of the id %
BUCKETS, hex>}``, and its value is a run of **records**, one per session, in the
order they were written (the first: the least recently active)::

    session id   12 bytes: an HMAC of the session key with SECRET_KEY (shown as
                 24 hex digits: safe to show, it cannot load or find a session);
                 for a record the backfill wrote, an HMAC of the session's place
    expiry       4 bytes, big-endian Unix seconds
    length       2 bytes, then a msgpack payload: [the session's place (its Redis
                 names, never its key), created, last seen, IP, user agent]
                 (the last four with USER_SESSION_METADATA)

A run too long for the bucket's compact encoding moves to an overflow key, as
a big session does. A record is written before a logged-in session is created
(or moved here), before the first save of one that has none, again at most once
per ``USER_SESSION_SEEN_EVERY`` seconds when the session is saved, and whenever
the session would outlive it; the session keeps when its record was written and
when that record expires (and with metadata when it was created) in its ``_csi``
item. A record never expires before its session. Past ``USER_SESSIONS_MAX``
records, a write ends the user's least recently active sessions (``writing``).
The scripts (``index_lua.py``) drop expired records whenever they rewrite a run,
listings drop the records of sessions deleted elsewhere, ``cleanuprs`` sweeps the
user buckets too, and a bucket's TTL covers its longest-lived record.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
from django.utils.crypto import salted_hmac

from ..format.codec import COMPACT, HAS_EXPIRY, OVERFLOW, is_overflow_pointer
from . import index_lua
from .base import Storage
from .bucket_names import bucket_name, overflow_key
from .buckets import MAX_EXPIRY
from .calls import Call, evalsha
from .index_meta import MAX_USER_AGENT as MAX_USER_AGENT  # (re-exported: the middleware reads them here)
from .index_meta import request_meta as request_meta
from .index_meta import summarize as summarize

if TYPE_CHECKING:
    from .options import SessionOptions

logger = logging.getLogger("cache_sessions")

USER_KEY = "_auth_user_id"  # what Django's login() stores
# In an indexed session: [when its record was written, when that record expires] (Unix
# seconds), or, with metadata, [created, written, expires]. Short: it is in every indexed session.
MARK = "_csi"
_RECORD = struct.Struct(">12sIH")  # session id, expiry, payload length (index_lua.INDEX_PRELUDE reads the same)
POINTER_BYTE = bytes((COMPACT << 4 | HAS_EXPIRY | OVERFLOW,))  # the first byte of an overflow pointer

# An operation on the index, written once as a generator of call batches (each reply
# list is sent back in), run by ``calls.drive`` + ``execute_many`` or the async twins.
Batches = Generator[list[Call[Any]], list[Any], Any]


def session_id(session_key: str) -> bytes:
    """The opaque id of a session (12 bytes; the API shows it as hex): useless to anyone
    without SECRET_KEY, and it cannot load or find a session."""
    return salted_hmac("cache_sessions.users.session_id", session_key, algorithm="sha256").digest()[:12]


def place_id(place: tuple[bytes, ...]) -> bytes:
    """The id of a record the backfill wrote (``backfill.py``): it knows a session's
    place, not its key. A record the session writes itself replaces it."""
    packed: bytes = msgpack.packb(list(place), use_bin_type=True)
    return salted_hmac("cache_sessions.users.place_id", packed, algorithm="sha256").digest()[:12]


def ids_of(sessions: Storage, session_key: str) -> list[bytes]:
    """The ids a session's record can have: its key's, and its place's (backfilled)."""
    return [session_id(session_key), place_id(sessions.place(session_key))]


def user_id_of(user: Any) -> str:
    """A user's id as Django's ``login()`` stores it in the session (or an id given as is)."""
    if isinstance(user, (str, int)):
        return str(user)
    return str(user._meta.pk.value_to_string(user))


@dataclass(frozen=True)
class Write:
    """A record to write: whose it is, the record, the other id of the same session (a
    backfilled record it replaces), and whether it is filed as the least recently active."""

    user: str
    record: bytes
    also: bytes
    oldest: bool = False


@dataclass(frozen=True)
class IndexEntry:
    """Where a user's records live: their bucket, field and overflow key."""

    bucket: bytes
    field: bytes
    overflow: bytes

    @classmethod
    def of(cls, sessions: Storage, user_id: str) -> IndexEntry:
        bucket = sessions.prefix + bucket_name(zlib.crc32(user_id.encode()) % sessions.options.buckets, b"u")
        field = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
        return cls(bucket, field, overflow_key(bucket, field))

    def read_call(self) -> Call[bytes]:
        """The user's run of records (a pointer costs a second round trip)."""

        def parse(run: bytes | None) -> bytes | Call[bytes]:
            if run is not None and is_overflow_pointer(run):
                return Call(("GET", self.overflow), lambda data: data or b"")
            return run or b""

        return Call(("HGET", self.bucket, self.field), parse)

    def add_call(self, write: Write, limit: int, cap: int) -> Call[list[bytes]]:
        """INDEX_ADD; its reply: the records past the cap (their sessions are to be ended)."""
        args = [self.field, write.record, int(time.time()), limit, POINTER_BYTE, cap, write.also, int(write.oldest)]
        return evalsha(index_lua.INDEX_ADD, [self.bucket, self.overflow], args, list)

    def remove_call(self, sids: list[bytes], limit: int) -> Call[None]:
        args = [self.field, int(time.time()), limit, POINTER_BYTE, *sids]
        return evalsha(index_lua.INDEX_REMOVE, [self.bucket, self.overflow], args, lambda _: None)


def record(sid: bytes, expires_at: int, payload: list[Any]) -> bytes:
    packed: bytes = msgpack.packb(payload, use_bin_type=True)
    return _RECORD.pack(sid, min(expires_at, MAX_EXPIRY), len(packed)) + packed


def records(run: bytes, now: float) -> dict[bytes, list[Any]]:
    """The live records of a run: ``{session id: payload}`` (unreadable payloads skipped)."""
    found: dict[bytes, list[Any]] = {}
    position = 0
    while position + _RECORD.size <= len(run):
        sid, expires_at, size = _RECORD.unpack_from(run, position)
        start = position + _RECORD.size
        position = start + size
        if expires_at <= now:
            continue
        try:
            payload = msgpack.unpackb(run[start:position], raw=False)
        except Exception:  # a damaged record: skipped, and gone at the next rewrite
            continue
        if isinstance(payload, list) and payload and isinstance(payload[0], list):
            found[sid] = payload
    return found


def fitting(sessions: Storage, found: dict[bytes, list[Any]]) -> dict[bytes, list[Any]]:
    """The records whose place is one of this storage mode's (not left by another USE_HASH)."""
    size = len(sessions.place("a" * 32))
    return {sid: p for sid, p in found.items() if len(p[0]) == size and all(isinstance(n, bytes) for n in p[0])}


def writing(sessions: Storage, writes: list[Write]) -> Batches:
    """Write records (one batch); then, for users the writes took past USER_SESSIONS_MAX,
    end their least recently active sessions and remove those records (a second batch:
    the sessions first, so that no live session ever loses its record). Returns how
    many sessions were ended."""
    if not writes:
        return 0
    limit, cap = index_limit(sessions), sessions.options.user_sessions_max
    entries = [IndexEntry.of(sessions, write.user) for write in writes]
    replies = yield [entry.add_call(write, limit, cap) for entry, write in zip(entries, writes, strict=True)]
    deletions: list[Call[Any]] = []
    removals: list[Call[Any]] = []
    for entry, ended in zip(entries, replies, strict=True):
        if ended:
            places = fitting(sessions, records(b"".join(ended), 0))
            deletions += [sessions.delete_place_call(tuple(payload[0])) for payload in places.values()]
            removals.append(entry.remove_call([bytes(old[:12]) for old in ended], limit))
    if not removals:
        return 0
    logger.info("USER_SESSIONS_MAX reached: %d least recently active session(s) ended.", len(deletions))
    yield [*deletions, *removals]
    return len(deletions)


# Kept by the engine (backend.py, migration/) ----------------------------------


def _mark(mark: Any) -> tuple[int | None, int | None, int | None]:
    """``(created, written, record expires)`` of a session's mark. The older marks (written;
    [created, written]) read as a record that needs writing again."""
    if _is_int(mark):
        return None, mark, None
    if isinstance(mark, list) and all(_is_int(value) for value in mark):
        if len(mark) == 3:
            return mark[0], mark[1], mark[2]
        if len(mark) == 2:  # [written, expires]; an older [created, written] reads as expired
            return mark[0], mark[0], mark[1]
    return None, None, None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def entry_due(options: SessionOptions, session: dict[str, Any], created: bool, ttl: int | None = None) -> bool:
    """Whether this save must (re)write the session's index record: a new session, one
    without a record, a "last seen" older than USER_SESSION_SEEN_EVERY, or a session
    that would outlive its record once saved with ``ttl`` (``set_expiry`` raised it)."""
    if not options.user_sessions or not session.get(USER_KEY):
        return False
    _, written, expires = _mark(session.get(MARK))
    if created or written is None or expires is None:
        return True
    now = time.time()
    if now - written >= options.user_session_seen_every:
        return True
    return ttl is not None and min(now + ttl, MAX_EXPIRY) > expires


def stamp(
    sessions: Storage, session_key: str, session: dict[str, Any], ttl: int, created: bool, meta: dict[str, str] | None
) -> Write:
    """The record of a session about to be saved with ``ttl``; ``session`` gets its mark,
    to be saved with it. The record covers every save until the next record is due:
    their expiry is at most then + ttl."""
    now = int(time.time())
    options = sessions.options
    expires = min(now + ttl + options.user_session_seen_every, MAX_EXPIRY)
    payload: list[Any] = [list(sessions.place(session_key))]
    if options.user_session_metadata:
        first = (None if created else _mark(session.get(MARK))[0]) or now
        payload += [first, now, (meta or {}).get("i"), (meta or {}).get("a")]
        session[MARK] = [first, now, expires]
    else:
        session[MARK] = [now, expires]
    own, backfilled = ids_of(sessions, session_key)
    return Write(str(session[USER_KEY]), record(own, expires, payload), backfilled)


def indexing(
    sessions: Storage, session_key: str, session: dict[str, Any], ttl: int, created: bool, meta: dict[str, str] | None
) -> Batches:
    """What a save sends before the session when its record is due (see ``entry_due``)."""
    return writing(sessions, [stamp(sessions, session_key, session, ttl, created, meta)])


def moving(sessions: Storage, session_key: str, session: dict[str, Any], ttl: int) -> Batches:
    """The record of a session brought over from MIGRATE_FROM, sent before it is created here."""
    return writing(sessions, moved_records(sessions, [(session_key, session, ttl)]))


def moved_records(sessions: Storage, moved: list[tuple[str, dict[str, Any], int]]) -> list[Write]:
    """The records of sessions ``(key, session, ttl)`` about to be created here: the logged-in
    ones, with USER_SESSIONS (each session gets its mark, to be created with it)."""
    if not sessions.options.user_sessions:
        return []
    return [stamp(sessions, key, session, ttl, True, None) for key, session, ttl in moved if session.get(USER_KEY)]


def remove_call(sessions: Storage, user_id: str, session_key: str) -> Call[None]:
    return IndexEntry.of(sessions, user_id).remove_call(ids_of(sessions, session_key), index_limit(sessions))


def index_limit(sessions: Storage) -> int:
    """The longest run kept inside a user bucket: the sessions' own inline limit."""
    return sessions.inline_limit()
