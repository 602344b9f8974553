"""Sessions per user (``OPTIONS["USER_SESSIONS"]``): list a user's sessions, and end
them, from the index the engine keeps (``storage/index.py``: its format and upkeep;
``engine/user_sessions.py``: the listing and the ending). With the option off every
call raises ``UserSessionsOff``: an empty answer would read as "this user has no
sessions". Every call that ends sessions sends ``signals.sessions_revoked``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .backend import SessionStore
from .engine.user_sessions import UserSession, current_ids, listing, revoking, sid_of
from .errors import UserSessionsOff
from .signals import areported, reported  # each revocation sends signals.sessions_revoked
from .storage.base import Storage
from .storage.calls import adrive, drive
from .storage.index import Batches, IndexEntry, user_id_of
from .storage.registry import sessions_for

__all__ = [
    "UserSession",
    "arevoke_all_sessions",
    "arevoke_other_sessions",
    "arevoke_session",
    "auser_sessions",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "user_sessions",
]


def _run(sessions: Storage, steps: Batches) -> Any:
    """A per-user operation's batches, one after the other, within one OPERATION_TIMEOUT (Redis Cluster)."""
    with sessions.operation():
        return drive(steps, sessions.execute_many)


async def _arun(sessions: Storage, steps: Batches) -> Any:
    with sessions.operation():
        await sessions.aprepare()  # the index's limit, learnt on asyncio (not by a call builder, on sync)
        return await adrive(steps, sessions.aexecute_many)


def _target(user: Any, alias: str | None) -> tuple[Storage, IndexEntry]:
    alias = alias or settings.SESSION_CACHE_ALIAS
    sessions = sessions_for(alias)
    if not sessions.options.user_sessions:
        raise UserSessionsOff(alias)
    return sessions, IndexEntry.of(sessions, user_id_of(user))


def user_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    """The live sessions of ``user`` (a user, or its id), newest first; ``current`` (a request,
    a session or a session key) marks the one that is in use."""
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = _run(sessions, listing(sessions, entry, current_ids(sessions, current)))
    return listed


@reported
def revoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    """End one of ``user``'s sessions (by the id a listing shows); False if it is not one of theirs."""
    sessions, entry = _target(user, alias)
    sid = sid_of(session_id)
    return sid is not None and bool(_run(sessions, revoking(sessions, entry, frozenset(), sid)))


@reported
def revoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    """Log the request's user out everywhere else; the number of sessions ended."""
    sessions, entry = _target(request.user, alias)
    return int(_run(sessions, revoking(sessions, entry, current_ids(sessions, request), None)))


@reported
def revoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    """Log ``user`` out everywhere (e.g. an account that was just locked)."""
    sessions, entry = _target(user, alias)
    return int(_run(sessions, revoking(sessions, entry, frozenset(), None)))


async def auser_sessions(user: Any, *, current: Any = None, alias: str | None = None) -> list[UserSession]:
    sessions, entry = _target(user, alias)
    listed: list[UserSession] = await _arun(sessions, listing(sessions, entry, current_ids(sessions, current)))
    return listed


@areported
async def arevoke_session(user: Any, session_id: str, *, alias: str | None = None) -> bool:
    sessions, entry = _target(user, alias)
    sid = sid_of(session_id)
    return sid is not None and bool(await _arun(sessions, revoking(sessions, entry, frozenset(), sid)))


@areported
async def arevoke_other_sessions(request: Any, *, alias: str | None = None) -> int:
    user = await request.auser() if hasattr(request, "auser") else request.user
    sessions, entry = _target(user, alias)
    return int(await _arun(sessions, revoking(sessions, entry, current_ids(sessions, request), None)))


@areported
async def arevoke_all_sessions(user: Any, *, alias: str | None = None) -> int:
    sessions, entry = _target(user, alias)
    return int(await _arun(sessions, revoking(sessions, entry, frozenset(), None)))


# Whether this site keeps sessions per user (the session pages, the admin, the checks ask) ----


def _alias(alias: str | None) -> str:
    return alias or settings.SESSION_CACHE_ALIAS


def user_sessions_on(alias: str | None = None) -> bool:
    """Whether this site's sessions are ours and indexed per user (``OPTIONS["USER_SESSIONS"]``)."""
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return issubclass(engine, SessionStore) and sessions_for(_alias(alias)).options.user_sessions


def metadata_on(alias: str | None = None) -> bool:
    """Whether the index keeps each session's device, IP address and times (``USER_SESSION_METADATA``)."""
    return sessions_for(_alias(alias)).options.user_session_metadata


def require_user_sessions(alias: str | None = None) -> None:
    if not user_sessions_on(alias):
        raise ImproperlyConfigured(
            f"cache_sessions' session pages and admin need sessions per user: set SESSION_ENGINE = "
            f"'cache_sessions.backend' and OPTIONS['USER_SESSIONS'] = True in CACHES[{_alias(alias)!r}] "
            f"(they list and end a user's sessions from that index)."
        )
