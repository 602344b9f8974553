"""Sessions per user (``OPTIONS["USER_SESSIONS"]``): list a user's sessions, and end
them, from the index the engine keeps (``user_index.py``: its format and upkeep).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from .calls import Call, adrive, drive
from .signals import areported, reported  # each revocation sends signals.sessions_revoked
from .storage import Sessions
from .user_index import IndexEntry, index_limit, records, session_id, user_id_of


@dataclass(frozen=True)
class UserSession:
    """One of a user's sessions, as the API shows it (never its key)."""

    id: str
    created: int | None
    last_seen: int | None
    ip: str | None
    user_agent: str | None
    current: bool = False


# The API ---------------------------------------------------------------------
# Each operation is written once, as a generator of call batches, and run by the
# sync (``storage.drive`` + ``execute_many``) or the async executor.

Batches = Generator[list[Call[Any]], list[Any], Any]


def _listing(sessions: Sessions, entry: IndexEntry, current: bytes | None) -> Batches:
    """A user's live sessions, newest first; records of sessions that are gone are dropped."""
    [run] = yield [entry.read_call()]
    found = _fitting(sessions, records(run, time.time()))
    alive = yield [sessions.alive_place_call(tuple(payload[0])) for payload in found.values()]
    gone = [sid for sid, live in zip(found, alive, strict=True) if not live]
    if gone:
        yield [entry.remove_call(gone, index_limit(sessions))]
    listed = [_shown(sid, payload, current) for sid, payload in found.items() if sid not in gone]
    return sorted(listed, key=lambda s: (not s.current, -(s.last_seen or 0)))


def _fitting(sessions: Sessions, found: dict[bytes, list[Any]]) -> dict[bytes, list[Any]]:
    """The records whose place is one of this storage mode's (not left by another USE_HASH)."""
    size = len(sessions.place("a" * 32))
    return {sid: p for sid, p in found.items() if len(p[0]) == size and all(isinstance(n, bytes) for n in p[0])}


def _shown(sid: bytes, payload: list[Any], current: bytes | None) -> UserSession:
    created, seen, ip, agent = (payload[1:] + [None] * 4)[:4]
    return UserSession(sid.hex(), created, seen, ip, agent, sid == current)


def _revoking(sessions: Sessions, entry: IndexEntry, keep: bytes | None, only: bytes | None) -> Batches:
    """Delete sessions of a user (all but ``keep``, or only ``only``); their number."""
    [run] = yield [entry.read_call()]
    found = _fitting(sessions, records(run, time.time()))
    doomed = {sid: p for sid, p in found.items() if sid != keep and only in (None, sid)}
    if not doomed:
        return 0
    deletions = [sessions.delete_place_call(tuple(payload[0])) for payload in doomed.values()]
    yield [*deletions, entry.remove_call(list(doomed), index_limit(sessions))]  # the sessions first
    return len(doomed)


def _target(user: Any, alias: str | None) -> tuple[Sessions, IndexEntry]:
    from django.conf import settings

    from .client import sessions_for

    sessions = sessions_for(alias or settings.SESSION_CACHE_ALIAS)
    return sessions, IndexEntry.of(sessions, user_id_of(user))


def _current(current: Any) -> bytes | None:
    """The opaque id of a request's session, of a session store, or of a session key."""
    session = getattr(current, "session", current)
    key = getattr(session, "session_key", session)
    return session_id(key) if isinstance(key, str) and key else None


def _sid(shown: str) -> bytes | None:
    try:
        return bytes.fromhex(shown) if len(shown) == 24 else None
    except ValueError:
        return None


def user_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    """The live sessions of ``user`` (a user, or its id), newest first; ``current`` (a request,
    a session or a session key) marks the one that is in use."""
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = drive(_listing(sessions, entry, _current(current)), sessions.execute_many)
    return listed


@reported
def revoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    """End one of ``user``'s sessions (by the id a listing shows); False if it is not one of theirs."""
    sessions, entry = _target(user, alias)
    sid = _sid(session_id)
    return sid is not None and bool(drive(_revoking(sessions, entry, None, sid), sessions.execute_many))


@reported
def revoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    """Log the request's user out everywhere else; the number of sessions ended."""
    sessions, entry = _target(request.user, alias)
    return int(drive(_revoking(sessions, entry, _current(request), None), sessions.execute_many))


@reported
def revoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    """Log ``user`` out everywhere (e.g. an account that was just locked)."""
    sessions, entry = _target(user, alias)
    return int(drive(_revoking(sessions, entry, None, None), sessions.execute_many))


async def auser_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = await adrive(_listing(sessions, entry, _current(current)), sessions.aexecute_many)
    return listed


@areported
async def arevoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    sessions, entry = _target(user, alias)
    sid = _sid(session_id)
    return sid is not None and bool(await adrive(_revoking(sessions, entry, None, sid), sessions.aexecute_many))


@areported
async def arevoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    user = await request.auser() if hasattr(request, "auser") else request.user
    sessions, entry = _target(user, alias)
    return int(await adrive(_revoking(sessions, entry, _current(request), None), sessions.aexecute_many))


@areported
async def arevoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    sessions, entry = _target(user, alias)
    return int(await adrive(_revoking(sessions, entry, None, None), sessions.aexecute_many))
