"""What a failed session operation raises: the one place Redis errors are judged.

``SessionStoreUnavailable`` means "try again soon" (the server is down,
restarting, a read-only replica after a failover, out of memory): a request
can get a 503 with ``Retry-After`` (``middleware.py``). Every other failure of
the store is a ``SessionStoreError`` (a permission the Redis user lacks, wrong
credentials, a foreign key in the session namespace): a bug to fix, not to
retry. Neither is ever turned into an empty session, which would log the
user out and overwrite their data on the next save.

Transient connection failures are retried first, with backoff, by the
``RETRY`` policy of the alias (``retry_policy``): every session write is
idempotent for its own retry, so a retried write never applies twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django_redis.exceptions import ConnectionInterrupted
from redis import exceptions as redis_errors
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

DEFAULT_RETRIES = 2
# Waits of 50-100 ms, then 100-200 ms: long enough for a dropped connection to be
# replaced, short enough that an outage is reported within a request's patience.
DEFAULT_BACKOFF = EqualJitterBackoff(cap=0.5, base=0.05)


class SessionStoreError(Exception):
    """A session operation failed in Redis (see ``__cause__`` for redis-py's error)."""


class CorruptSession(ValueError):
    """Stored bytes are not a session the codec can read (``format/codec.py``)."""


class UnencodableSession(TypeError):
    """A session value has a type msgpack cannot store: its save fails."""


class SessionTooLarge(UnencodableSession):
    """A session is larger than ``MAX_SESSION_BYTES``: its save fails."""


class UserSessionsOff(ImproperlyConfigured):
    """The sessions-per-user API was called on an alias without ``USER_SESSIONS``: there is no
    index to answer from, and "no sessions" would be a false all-clear. An ``ImproperlyConfigured``
    (a setting to change), of its own class so that a page can tell it from other mistakes."""

    def __init__(self, alias: str) -> None:
        super().__init__(
            f"Sessions per user are off for the CACHES alias {alias!r}: there is no index of users' sessions "
            f"to list or end. Turn it on with CACHES[{alias!r}]['OPTIONS']['USER_SESSIONS'] = True; sessions "
            f"that exist already are indexed when next used, or at once by `manage.py usersessions --backfill`."
        )


class TooFewReplicas(redis_errors.RedisError):
    """Fewer replicas than ``MIN_REPLICAS_ACK`` confirmed a write in time (``storage/acks.py``)."""

    def __init__(self, acked: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(
            f"the write reached the primary, but only {acked} of the {wanted} replicas MIN_REPLICAS_ACK "
            f"asks for confirmed it within {timeout_ms} ms: it may not survive a failover"
        )


class SessionStoreUnavailable(SessionStoreError, ConnectionInterrupted):
    """The session store cannot serve this request now; retrying later may work.

    A ``ConnectionInterrupted`` too, so code written for django-redis catches it.
    """

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.connection = None

    def __str__(self) -> str:
        return Exception.__str__(self)


# Failures of the connection or of the server's state, not of the request.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,  # refused, reset, closed; also LOADING (BusyLoadingError)
    redis_errors.TimeoutError,
    TimeoutError,
    redis_errors.ReadOnlyError,  # a replica, e.g. an old primary after a failover
    redis_errors.OutOfMemoryError,  # maxmemory reached with noeviction: writes refused
    redis_errors.ClusterError,  # CLUSTERDOWN, MASTERDOWN, too many MOVED/ASK redirections
    redis_errors.SlotNotCoveredError,  # a cluster client whose slot map is being refreshed
    redis_errors.TryAgainError,
    TooFewReplicas,
)
# ...except these, which no retry will cure.
_PERMANENT: tuple[type[Exception], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
)
# What a redis-py call can raise about Redis: its errors, and a cluster client's
# SlotNotCoveredError (a RedisClusterException, not a RedisError).
REDIS_ERRORS: tuple[type[Exception], ...] = (redis_errors.RedisError, TimeoutError, redis_errors.SlotNotCoveredError)

# Redis error codes (the first word of an error reply). Inside a Lua script an error
# reaches redis-py as a plain ResponseError ("Error running script ... -OOM ..." on
# Redis 6.2, "ACL failure in script" on 7.x), so codes are also found in the text.
_TRANSIENT_CODES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS")
_HINTS: dict[str, str] = {
    "OOM": "Redis reached maxmemory and refuses writes",
    "READONLY": "the server is a read-only replica",
    "LOADING": "Redis is loading its dataset after a restart",
    "NOREPLICAS": "the primary has fewer replicas in sync than min-replicas-to-write asks",
    "NOPERM": "the Redis user lacks a permission the session engine needs (see README, ACL)",
    "ACL failure": "the Redis user lacks a permission the session engine needs (see README, ACL)",
    "WRONGTYPE": "a key in the session namespace holds another Redis type (something else wrote there)",
    "WRONGPASS": "Redis refused the credentials of the alias",
    "NOAUTH": "Redis wants a password the alias does not give",
}


_CODE = re.compile("(?:^|-)(" + "|".join(map(re.escape, (*_TRANSIENT_CODES, *_HINTS))) + r")\b")


def _code(exc: BaseException) -> str | None:
    """The Redis error code an error carries, at the start of its message or after a ``-``."""
    found = _CODE.search(str(exc))
    return found.group(1) if found else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _PERMANENT):
        return False
    return isinstance(exc, _UNAVAILABLE) or _code(exc) in _TRANSIENT_CODES


def is_readonly(exc: BaseException) -> bool:
    """A write refused by a replica: on a Sentinel service, a primary that was just demoted."""
    return isinstance(exc, redis_errors.ReadOnlyError) or _code(exc) == "READONLY"


def is_retryable(exc: BaseException) -> bool:
    """Retried by ``RETRY``: lost connections and timeouts. (A replica stays a replica and
    memory does not free itself within a backoff, so READONLY and OOM are reported at once,
    except where the primary moves: see ``topology/sentinel.py``.)"""
    return isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError, TimeoutError)) and not (
        isinstance(exc, _PERMANENT)
    )


def translate(exc: Exception) -> SessionStoreError:
    """The session-store error for a redis-py error (raise it ``from exc``)."""
    code = _code(exc)
    if isinstance(exc, (redis_errors.AuthenticationError, redis_errors.AuthorizationError)):
        code = code or "WRONGPASS"
    hint = _HINTS.get(code or "", "")
    message = f"Redis {type(exc).__name__}: {exc}" + (f" ({hint})" if hint else "")
    if is_transient(exc):
        return SessionStoreUnavailable(message)
    return SessionStoreError(message)


@contextmanager
def translated() -> Iterator[None]:
    """Raise redis-py errors of the block as session-store errors."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise translate(exc) from exc


def retry_policy(value: object) -> Retry:
    """The ``RETRY`` option: a number of retries (exponential backoff with jitter) or a ``redis.retry.Retry``."""
    if isinstance(value, Retry):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Retry(DEFAULT_BACKOFF, value)
    raise TypeError(f"must be an int >= 0 or a redis.retry.Retry, not {value!r}")
