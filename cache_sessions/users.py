"""Sessions per user (``OPTIONS["USER_SESSIONS"]``): an index the engine keeps, and
the API to list a user's sessions and revoke them.

The index of a user is one hash, ``<KEY_PREFIX>:s<VERSION>:u{<digest of the user
id>}`` (its own Cluster slot). A field is a session's **opaque id**: an HMAC of
the session key with ``SECRET_KEY``, safe to show (it cannot load or hijack a
session, and does not say where it lives). Its value is an entry in the stored
value format of ``codec.py``, with an expiry in its header like a hash-mode
session: ``{"p": the session's place (its Redis names, never its key), "c":
created, "s": last seen, "i": IP address, "a": user agent}`` (the last two with
``USER_SESSION_METADATA``). An entry is written when an authenticated session
is created, and again at most once per ``USER_SESSION_SEEN_EVERY`` seconds
when it is saved (the session notes when in its ``_cs_index`` item), with an
expiry that covers every save until then: it never expires before its
session. Entries of sessions deleted elsewhere or expired are dropped when a
listing meets them; the index's own TTL covers its longest-lived entry, so it
never outlives its last session.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.crypto import salted_hmac

from . import lua
from .codec import CorruptSession
from .storage import Call, Sessions, adrive, drive, evalsha

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .backend import SessionStore

USER_KEY = "_auth_user_id"  # what Django's login() stores
MARK = "_cs_index"  # in a session: when its index entry was last written (Unix seconds)
MAX_USER_AGENT = 64


@dataclass(frozen=True)
class UserSession:
    """One of a user's sessions, as the API shows it (never its key)."""

    id: str
    created: int | None
    last_seen: int | None
    ip: str | None
    user_agent: str | None
    current: bool = False


def session_id(session_key: str) -> str:
    """The opaque id of a session: shown to its user, useless to anyone else."""
    return salted_hmac("cache_sessions.users.session_id", session_key, algorithm="sha256").hexdigest()[:24]


def index_key(sessions: Sessions, user_id: str) -> bytes:
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).hexdigest().encode()
    return sessions.prefix + b"u{" + digest + b"}"


def user_id_of(user: Any) -> str:
    """A user's id as Django's ``login()`` stores it in the session (or an id given as is)."""
    if isinstance(user, (str, int)):
        return str(user)
    return str(user._meta.pk.value_to_string(user))


# Kept by the engine (backend.py calls these) -------------------------------


def entry_due(store: SessionStore, session: dict[str, Any], created: bool) -> bool:
    """Whether this save must (re)write the session's index entry."""
    if not store._storage.options.user_sessions or not session.get(USER_KEY):
        return False
    mark = session.get(MARK)
    every = store._storage.options.user_session_seen_every
    return created or not isinstance(mark, list) or len(mark) != 2 or time.time() - mark[1] >= every


def add_call(store: SessionStore, session: dict[str, Any], ttl: int, created: bool) -> Call[bool]:
    """The index entry of ``store``'s session (sent before the session is saved; ``session``
    gets its mark, ``[created, written]``, to be saved with it)."""
    sessions = store._storage
    assert store.session_key is not None
    now = int(time.time())
    options = sessions.options
    entry_ttl = ttl + options.user_session_seen_every  # covers every save until the next entry write
    mark = session.get(MARK)
    first = mark[0] if not created and isinstance(mark, list) and len(mark) == 2 else now
    entry: dict[str, Any] = {"p": list(sessions.place(store.session_key)), "c": first, "s": now}
    if options.user_session_metadata and store.request_meta:
        entry.update(store.request_meta)
    session[MARK] = [first, now]
    value = sessions.codec.encode(entry, expires_at=now + entry_ttl)
    key = index_key(sessions, str(session[USER_KEY]))
    return evalsha(lua.INDEX_ADD, [key], [session_id(store.session_key), value, entry_ttl], bool)


def remove_call(sessions: Sessions, user_id: str, session_key: str) -> Call[None]:
    return Call(("HDEL", index_key(sessions, user_id), session_id(session_key)), lambda _: None)


# The API ---------------------------------------------------------------------
# Each operation is written once, as a generator of call batches, and run by the
# sync (``storage.drive`` + ``execute_many``) or the async executor.

Batches = Generator[list[Call[Any]], list[Any], Any]


def _listing(sessions: Sessions, key: bytes, current: str | None) -> Batches:
    """A user's live sessions, newest first; entries of sessions that are gone are dropped."""
    [raw] = yield [Call(("HGETALL", key), dict)]
    entries = {}
    for sid, value in raw.items():
        entry = _decoded(sessions, value)
        if entry is not None and isinstance(entry.get("p"), list):
            entries[sid.decode()] = entry
    alive = yield [sessions.alive_place_call(tuple(entry["p"])) for entry in entries.values()]
    gone = [sid for sid, live in zip(entries, alive, strict=True) if not live]
    stale = [sid.decode() for sid in raw if sid.decode() not in entries]
    if gone or stale:
        yield [Call(("HDEL", key, *gone, *stale), lambda _: None)]
    listed = [
        UserSession(sid, e.get("c"), e.get("s"), e.get("i"), e.get("a"), current == sid)
        for sid, e in entries.items()
        if sid not in gone
    ]
    return sorted(listed, key=lambda s: (not s.current, -(s.last_seen or 0)))


def _revoking(sessions: Sessions, key: bytes, keep: str | None, only: str | None) -> Batches:
    """Delete the sessions of an index (all but ``keep``, or only ``only``); their number."""
    [raw] = yield [Call(("HGETALL", key), dict)]
    doomed = {sid.decode(): _decoded(sessions, value) for sid, value in raw.items()}
    doomed = {sid: e for sid, e in doomed.items() if sid != keep and (only is None or sid == only)}
    if not doomed:
        return 0
    calls: list[Call[Any]] = [
        sessions.delete_place_call(tuple(e["p"])) for e in doomed.values() if e and isinstance(e.get("p"), list)
    ]
    yield [*calls, Call(("HDEL", key, *doomed), lambda _: None)]  # the sessions first, then the entries
    return len(doomed)


def _decoded(sessions: Sessions, value: bytes) -> dict[str, Any] | None:
    """An index entry, or None when it is unreadable or expired."""
    try:
        entry, expires_at = sessions.codec.decode(value)
    except CorruptSession:
        return None
    return None if expires_at is not None and expires_at <= time.time() else entry


def _target(user: Any, alias: str | None) -> tuple[Sessions, bytes]:
    from django.conf import settings

    from .client import sessions_for

    sessions = sessions_for(alias or settings.SESSION_CACHE_ALIAS)
    return sessions, index_key(sessions, user_id_of(user))


def _current(current: Any) -> str | None:
    """The opaque id of a request's session, of a session store, or of a session key."""
    session = getattr(current, "session", current)
    key = getattr(session, "session_key", session)
    return session_id(key) if isinstance(key, str) and key else None


def user_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    """The live sessions of ``user`` (a user, or its id), newest first; ``current`` (a request,
    a session or a session key) marks the one that is in use."""
    sessions, key = _target(user, alias)
    listed: list[UserSession] = drive(_listing(sessions, key, _current(current)), sessions.execute_many)
    return listed


def revoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    """End one of ``user``'s sessions (by its opaque id); False if it is not one of theirs."""
    sessions, key = _target(user, alias)
    return bool(drive(_revoking(sessions, key, None, session_id), sessions.execute_many))


def revoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    """Log the request's user out everywhere else; the number of sessions ended."""
    sessions, key = _target(request.user, alias)
    return int(drive(_revoking(sessions, key, _current(request), None), sessions.execute_many))


def revoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    """Log ``user`` out everywhere (e.g. an account that was just locked)."""
    sessions, key = _target(user, alias)
    return int(drive(_revoking(sessions, key, None, None), sessions.execute_many))


async def auser_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    sessions, key = _target(user, alias)
    listed: list[UserSession] = await adrive(_listing(sessions, key, _current(current)), sessions.aexecute_many)
    return listed


async def arevoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    sessions, key = _target(user, alias)
    return bool(await adrive(_revoking(sessions, key, None, session_id), sessions.aexecute_many))


async def arevoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    user = await request.auser() if hasattr(request, "auser") else request.user
    sessions, key = _target(user, alias)
    return int(await adrive(_revoking(sessions, key, _current(request), None), sessions.aexecute_many))


async def arevoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    sessions, key = _target(user, alias)
    return int(await adrive(_revoking(sessions, key, None, None), sessions.aexecute_many))


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
