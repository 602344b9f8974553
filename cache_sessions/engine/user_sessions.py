"""A user's sessions, as the API of ``cache_sessions.users`` lists and ends them, from the
index the engine keeps (``storage/index.py``: its format and upkeep).

Each operation is written once, as a generator of call batches (``index.Batches``),
and run by the sync (``calls.drive`` + ``execute_many``) or the async executor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..storage.base import Storage
from ..storage.index import Batches, IndexEntry, fitting, ids_of, index_limit, records


@dataclass(frozen=True)
class UserSession:
    """One of a user's sessions, as the API shows it (never its key)."""

    id: str
    created: int | None
    last_seen: int | None
    ip: str | None
    user_agent: str | None
    current: bool = False


def listing(sessions: Storage, entry: IndexEntry, current: frozenset[bytes]) -> Batches:
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


def revoking(sessions: Storage, entry: IndexEntry, keep: frozenset[bytes], only: bytes | None) -> Batches:
    """Delete sessions of a user (all but those of ids ``keep``, or only ``only``); their number."""
    [run] = yield [entry.read_call()]
    found = fitting(sessions, records(run, time.time()))
    doomed = {sid: p for sid, p in found.items() if sid not in keep and only in (None, sid)}
    if not doomed:
        return 0
    deletions = [sessions.delete_place_call(tuple(payload[0])) for payload in doomed.values()]
    yield [*deletions, entry.remove_call(list(doomed), index_limit(sessions))]  # the sessions first
    return len(doomed)


def current_ids(sessions: Storage, current: Any) -> frozenset[bytes]:
    """The ids the record of a request's session, of a session store, or of a session key can have."""
    session = getattr(current, "session", current)
    key = getattr(session, "session_key", session)
    return frozenset(ids_of(sessions, key)) if isinstance(key, str) and key else frozenset()


def sid_of(shown: str) -> bytes | None:
    try:
        return bytes.fromhex(shown) if len(shown) == 24 else None
    except ValueError:
        return None
