"""Where sessions used to live: what every old store ``MIGRATE_FROM`` names is.

A ``Source`` is an old store. It reads one session (its data and absolute
expiry), deletes it, and, when the store can list what it holds, walks its
sessions in batches for ``migratesessions``. Each reads the data as it lies
in the store, decoded the old engine's way, so the old engine needs no
request of its own and does not even have to run here: Django's engines are
in ``django.py``; sessions in Redis written by cache_sessions with other
options and by django-redis-sessions in ``redis.py``; by django-redisession in
``redisession.py``. ``registry.build_source`` turns the ``MIGRATE_FROM``
option into one of them and checks its parameters. A source imports no other
source: what several share is here (reading a Redis string with its TTL, and
the executor that sends an old store's calls).

A source only ever receives a key its ``accepts`` let through: for the
key-based stores that is a key cache_sessions itself would accept
(``keys.is_valid_session_key``), so a malformed cookie never reaches them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.db import DatabaseError
from django.utils.module_loading import import_string
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from .. import errors, keys
from ..errors import SessionStoreError, SessionStoreUnavailable
from ..storage.calls import Call
from ..storage.executor import Executor
from ..topology.base import Direct

suspicious = logging.getLogger("django.security.SuspiciousSession")


@dataclass(frozen=True)
class Found:
    """A session in an old store."""

    data: dict[str, Any]
    expires_at: float | None  # Unix seconds; None: the store does not say (the data or the cookie age decide)


@dataclass(frozen=True)
class Entry:
    """One session met by a bulk walk: found, gone meanwhile (neither), or unreadable (``error``)."""

    key: str
    found: Found | None = None
    error: str | None = None


class Unreadable(ValueError):
    """Stored bytes the old engine would not have read either (bad signature, corrupt data)."""


class BulkUnsupported(Exception):
    """The old store cannot list its sessions: only the read-through fallback can move them."""


class Source:
    """An old session store (the base reads nothing)."""

    name = "?"
    native_async = False  # True: aread/adelete do their I/O on the event loop; False: a thread hop
    new_key = False  # True: the cookie holds the session (signed cookies); a moved session gets a new key

    def accepts(self, cookie: str) -> bool:
        """Whether a cookie may be looked up here (nothing else reaches ``read``)."""
        return keys.is_valid_session_key(cookie)

    def read(self, key: str) -> Found | None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    async def aread(self, key: str) -> Found | None:
        return await sync_to_async(self.read)(key)

    async def adelete(self, key: str) -> None:
        await sync_to_async(self.delete)(key)

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        """Every session of the store, in batches (safe to delete what a batch moved before the next)."""
        raise BulkUnsupported(f"{self.name} cannot list the sessions it holds")

    def delete_many(self, session_keys: list[str]) -> None:
        for key in session_keys:
            self.delete(key)

    def __str__(self) -> str:
        return self.name


def decode_signed(text: str | bytes, qualname: str = "SessionStore") -> dict[str, Any]:
    """What ``SessionBase.decode`` of a class named ``qualname`` reads, or ``Unreadable``."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    try:
        data = signing.loads(
            text, salt=f"django.contrib.sessions.{qualname}", serializer=import_string(settings.SESSION_SERIALIZER)
        )
    except signing.BadSignature:
        raise Unreadable("bad signature (another SECRET_KEY?)") from None
    except Exception as exc:
        raise Unreadable(f"undecodable ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise Unreadable(f"a {type(data).__name__}, not a session")
    return data


def readable(read: Any, *args: Any) -> Found | None:
    """``read(*args)``, with unreadable data logged and taken as no session (as the old engines did)."""
    try:
        found: Found | None = read(*args)
    except Unreadable as exc:
        suspicious.warning("Unreadable session in the old session store (%s): not moved.", exc)
        return None
    return found


def expiry_of(data: Mapping[str, Any], modified_at: float) -> float:
    """When a session expires, Django's way: its ``_session_expiry``, else the cookie age after ``modified_at``
    (``Unreadable`` for an expiry that is neither a date nor seconds)."""
    expiry = data.get("_session_expiry")
    if not expiry:
        return modified_at + float(settings.SESSION_COOKIE_AGE)
    try:
        if isinstance(expiry, str):
            expiry = datetime.fromisoformat(expiry)
        expires_at = float(expiry.timestamp()) if isinstance(expiry, datetime) else modified_at + float(expiry)
        datetime.fromtimestamp(expires_at, UTC)  # a date Django could compute too (up to year 9999)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Unreadable(f"its _session_expiry (a {type(expiry).__name__}) is neither a date nor seconds") from None
    return expires_at


@contextmanager
def old_store(source: Source) -> Iterator[None]:
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


Parse = Callable[[bytes], Found]


def reader(redis: Any) -> Executor:
    """The executor of one redis-py client of an old store (``storage/executor.py``, on a
    ``Direct`` topology): the default RETRY policy, errors translated, follow-up calls sent."""
    return Executor(Direct(redis, errors.retry_policy(errors.DEFAULT_RETRIES)))


def string_read(name: bytes, parse: Parse) -> Call[Found | None]:
    """``GET name``, then, when found, ``PTTL name`` for its remaining life."""

    def got(data: bytes | None) -> Call[Found | None] | None:
        if data is None:
            return None
        return Call(("PTTL", name), lambda ms: _with_ttl(parse, data, ms))

    return Call(("GET", name), got)


def _with_ttl(parse: Parse, data: bytes, ms: int) -> Found | None:
    if ms == -2:  # expired between the two calls
        return None
    found = readable(parse, data)
    if found is None or ms < 0:
        return found
    return Found(found.data, time.time() + ms / 1000)
