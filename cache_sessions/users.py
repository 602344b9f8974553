"""Sessions per user (``OPTIONS["USER_SESSIONS"]``): list a user's sessions, and end
them, from the index the engine keeps (``user_index.py``: its format and upkeep).
With the option off every call raises ``UserSessionsOff``: an empty answer would
read as "this user has no sessions".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import UserSessionsOff
from .signals import areported, reported  # each revocation sends signals.sessions_revoked
from .storage.base import Storage
from .storage.calls import adrive, drive
from .storage.index import Batches, IndexEntry, fitting, ids_of, index_limit, records, user_id_of


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
# Each operation is written once, as a generator of call batches (``user_index.Batches``),
# and run by the sync (``calls.drive`` + ``execute_many``) or the async executor.


def _listing(sessions: Storage, entry: IndexEntry, current: frozenset[bytes]) -> Batches:
    """A user's live sessions, newest first; records of sessions that are gone are dropped."""
    [run] = yield [entry.read_call()]
    found = fitting(sessions, records(run, time.time()))
    alive = yield [sessions.alive_place_call(tuple(payload[0])) for payload in found.values()]
    gone = [sid for sid, live in zip(found, alive, strict=True) if not live]
    if gone:
        yield [entry.remove_call(gone, index_limit(sessions))]
    listed = [_shown(sid, payload, current) for sid, payload in found.items() if sid not in gone]
    return sorted(listed, key=lambda s: (not s.current, -(s.last_seen or 0)))


def _shown(sid: bytes, payload: list[Any], current: frozenset[bytes]) -> UserSession:
    created, seen, ip, agent = (payload[1:] + [None] * 4)[:4]
    return UserSession(sid.hex(), created, seen, ip, agent, sid in current)


def _revoking(sessions: Storage, entry: IndexEntry, keep: frozenset[bytes], only: bytes | None) -> Batches:
    """Delete sessions of a user (all but those of ids ``keep``, or only ``only``); their number."""
    [run] = yield [entry.read_call()]
    found = fitting(sessions, records(run, time.time()))
    doomed = {sid: p for sid, p in found.items() if sid not in keep and only in (None, sid)}
    if not doomed:
        return 0
    deletions = [sessions.delete_place_call(tuple(payload[0])) for payload in doomed.values()]
    yield [*deletions, entry.remove_call(list(doomed), index_limit(sessions))]  # the sessions first
    return len(doomed)


def _target(user: Any, alias: str | None) -> tuple[Storage, IndexEntry]:
    from django.conf import settings

    from .storage.registry import sessions_for

    alias = alias or settings.SESSION_CACHE_ALIAS
    sessions = sessions_for(alias)
    if not sessions.options.user_sessions:
        raise UserSessionsOff(alias)
    return sessions, IndexEntry.of(sessions, user_id_of(user))


def _current(sessions: Storage, current: Any) -> frozenset[bytes]:
    """The ids the record of a request's session, of a session store, or of a session key can have."""
    session = getattr(current, "session", current)
    key = getattr(session, "session_key", session)
    return frozenset(ids_of(sessions, key)) if isinstance(key, str) and key else frozenset()


def _sid(shown: str) -> bytes | None:
    try:
        return bytes.fromhex(shown) if len(shown) == 24 else None
    except ValueError:
        return None


def user_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    """The live sessions of ``user`` (a user, or its id), newest first; ``current`` (a request,
    a session or a session key) marks the one that is in use."""
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = drive(_listing(sessions, entry, _current(sessions, current)), sessions.execute_many)
    return listed


@reported
def revoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    """End one of ``user``'s sessions (by the id a listing shows); False if it is not one of theirs."""
    sessions, entry = _target(user, alias)
    sid = _sid(session_id)
    return sid is not None and bool(drive(_revoking(sessions, entry, frozenset(), sid), sessions.execute_many))


@reported
def revoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    """Log the request's user out everywhere else; the number of sessions ended."""
    sessions, entry = _target(request.user, alias)
    return int(drive(_revoking(sessions, entry, _current(sessions, request), None), sessions.execute_many))


@reported
def revoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    """Log ``user`` out everywhere (e.g. an account that was just locked)."""
    sessions, entry = _target(user, alias)
    return int(drive(_revoking(sessions, entry, frozenset(), None), sessions.execute_many))


async def auser_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = await adrive(
        _listing(sessions, entry, _current(sessions, current)), sessions.aexecute_many
    )
    return listed


@areported
async def arevoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    sessions, entry = _target(user, alias)
    sid = _sid(session_id)
    return sid is not None and bool(await adrive(_revoking(sessions, entry, frozenset(), sid), sessions.aexecute_many))


@areported
async def arevoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    user = await request.auser() if hasattr(request, "auser") else request.user
    sessions, entry = _target(user, alias)
    return int(await adrive(_revoking(sessions, entry, _current(sessions, request), None), sessions.aexecute_many))


@areported
async def arevoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    sessions, entry = _target(user, alias)
    return int(await adrive(_revoking(sessions, entry, frozenset(), None), sessions.aexecute_many))
