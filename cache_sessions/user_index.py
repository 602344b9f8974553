"""The index of users' sessions (``OPTIONS["USER_SESSIONS"]``): its format, and the
calls that keep it (``backend.py`` sends them; ``users.py`` reads them for the API).

The index is bucketed like hash-mode sessions, for the same reason (a Redis key
costs ~100 bytes of bookkeeping): a user is a field (8 bytes of BLAKE2b of the
user id) of a user bucket ``<KEY_PREFIX>:s<VERSION>:u{<crc32 of the id %
BUCKETS, hex>}``, and its value is a run of **records**, one per session::

    session id   12 bytes: an HMAC of the session key with SECRET_KEY (shown as
                 24 hex digits: safe to show, it cannot load or find a session)
    expiry       4 bytes, big-endian Unix seconds
    length       2 bytes, then a msgpack payload: [the session's place (its Redis
                 names, never its key), created, last seen, IP, user agent]
                 (the last four with USER_SESSION_METADATA)

A run too long for the bucket's compact encoding moves to an overflow key, as
a big session does. A record is written when an authenticated session is
created, and again at most once per ``USER_SESSION_SEEN_EVERY`` seconds when
the session is saved (the session keeps when, and with metadata when it was
created, in its ``_csi`` item), with an expiry that covers every save until the next
one: a record never expires before its session. The scripts (``lua.py``)
drop expired records whenever they rewrite a run, listings drop the records
of sessions deleted elsewhere, ``cleanuprs`` sweeps the user buckets too,
and a bucket's TTL covers its longest-lived record.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
from django.utils.crypto import salted_hmac

from . import lua
from .calls import Call, evalsha
from .codec import COMPACT, HAS_EXPIRY, OVERFLOW, is_overflow_pointer
from .storage import Sessions

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .backend import SessionStore

USER_KEY = "_auth_user_id"  # what Django's login() stores
# In an indexed session: when its record was written (Unix seconds), or, with metadata,
# [created, written]. Short: it is in every indexed session.
MARK = "_csi"
MAX_USER_AGENT = 64
_RECORD = struct.Struct(">12sIH")  # session id, expiry, payload length (lua.INDEX_PRELUDE reads the same)
POINTER_BYTE = bytes((COMPACT << 4 | HAS_EXPIRY | OVERFLOW,))  # the first byte of an overflow pointer


def session_id(session_key: str) -> bytes:
    """The opaque id of a session (12 bytes; the API shows it as hex): useless to anyone
    without SECRET_KEY, and it cannot load or find a session."""
    return salted_hmac("cache_sessions.users.session_id", session_key, algorithm="sha256").digest()[:12]


def user_id_of(user: Any) -> str:
    """A user's id as Django's ``login()`` stores it in the session (or an id given as is)."""
    if isinstance(user, (str, int)):
        return str(user)
    return str(user._meta.pk.value_to_string(user))


@dataclass(frozen=True)
class IndexEntry:
    """Where a user's records live: their bucket, field and overflow key."""

    bucket: bytes
    field: bytes
    overflow: bytes

    @classmethod
    def of(cls, sessions: Sessions, user_id: str) -> IndexEntry:
        from .buckets import bucket_name, overflow_key

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

    def add_call(self, record: bytes, limit: int) -> Call[bool]:
        args = [self.field, record, int(time.time()), limit, POINTER_BYTE]
        return evalsha(lua.INDEX_ADD, [self.bucket, self.overflow], args, bool)

    def remove_call(self, sids: list[bytes], limit: int) -> Call[None]:
        args = [self.field, int(time.time()), limit, POINTER_BYTE, *sids]
        return evalsha(lua.INDEX_REMOVE, [self.bucket, self.overflow], args, lambda _: None)


def record(sid: bytes, expires_at: int, payload: list[Any]) -> bytes:
    packed: bytes = msgpack.packb(payload, use_bin_type=True)
    return _RECORD.pack(sid, expires_at, len(packed)) + packed


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


# Kept by the engine (backend.py calls these) -------------------------------


def entry_due(store: SessionStore, session: dict[str, Any], created: bool) -> bool:
    """Whether this save must (re)write the session's index record."""
    if not store._storage.options.user_sessions or not session.get(USER_KEY):
        return False
    written = _written(session.get(MARK))
    every = store._storage.options.user_session_seen_every
    return created or written is None or time.time() - written >= every


def _written(mark: Any) -> int | None:
    if isinstance(mark, list) and len(mark) == 2:
        mark = mark[1]
    return mark if isinstance(mark, int) and not isinstance(mark, bool) else None


def add_call(store: SessionStore, session: dict[str, Any], ttl: int, created: bool) -> Call[bool]:
    """The index record of ``store``'s session (sent before the session is saved; ``session``
    gets its mark, to be saved with it)."""
    sessions = store._storage
    assert store.session_key is not None
    now = int(time.time())
    options = sessions.options
    payload: list[Any] = [list(sessions.place(store.session_key))]
    if options.user_session_metadata:
        mark = session.get(MARK)
        first = mark[0] if not created and isinstance(mark, list) and len(mark) == 2 else now
        meta = store.request_meta or {}
        payload += [first, now, meta.get("i"), meta.get("a")]
        session[MARK] = [first, now]
    else:
        session[MARK] = now
    # It covers every save until the next record is due: their expiry is at most then + ttl.
    expires_at = now + ttl + options.user_session_seen_every
    entry = IndexEntry.of(sessions, str(session[USER_KEY]))
    return entry.add_call(record(session_id(store.session_key), expires_at, payload), index_limit(sessions))


def remove_call(sessions: Sessions, user_id: str, session_key: str) -> Call[None]:
    return IndexEntry.of(sessions, user_id).remove_call([session_id(session_key)], index_limit(sessions))


def index_limit(sessions: Sessions) -> int:
    """The longest run kept inside a user bucket: the sessions' own inline limit."""
    from .buckets import HashSessions

    if isinstance(sessions, HashSessions):
        return sessions.inline_limit()
    from . import facts

    limits = [facts.listpack_limits(redis)[1] or facts.DEFAULT_INLINE_LIMIT for redis in sessions.servers()]
    return sessions.options.hash_max_inline or min(limits)


# Metadata ----------------------------------------------------------------------


def request_meta(request: HttpRequest) -> dict[str, str]:
    """What ``USER_SESSION_METADATA`` keeps of a request: its IP address and a short user agent."""
    return {"i": str(request.META.get("REMOTE_ADDR", ""))[:45], "a": summarize(request.headers.get("User-Agent", ""))}


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)
_TOOL = re.compile(r"^([A-Za-z][\w.-]{0,30})/")


def summarize(user_agent: str) -> str:
    """``"Firefox on Linux"``: a user agent people recognise, in at most 64 characters."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return str(browser or system)
    tool = _TOOL.match(user_agent)  # curl/8.5, python-requests/2.32...
    return tool.group(1) if tool else user_agent[:MAX_USER_AGENT]
