"""Session options of a cache alias: the one place they are read and checked.

They live in the alias's ``OPTIONS`` beside django-redis's own, under the names
django-redisession used. ``SessionOptions.from_options`` runs when sessions
first use a client, never when the client is built: an alias used only as a
cache keeps working whatever these options say. Names nobody knows are
reported by the system checks (``unknown_options``), not raised: they may
belong to a third-party serializer or connection factory.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from redis.retry import Retry

from .. import errors, keys
from ..format.codec import DEFAULT_MAX_SIZE, Codec
from .acks import Acks

DEFAULTS: dict[str, Any] = {
    "USE_HASH": True,
    "BUCKETS": 16384,
    "KEY_GENERATOR": None,  # None: the session key (string mode), a 12-byte digest (hash mode)
    "HASH_KEY_GENERATOR": None,  # None: h{crc32(key) % BUCKETS}
    "HASH_KEYS_CHECK_FOR_EXPIRY": None,  # None: a random sample of buckets
    "HASH_MAX_INLINE": None,  # None: the server's hash-max-listpack-value
    "FIELD_TTL": None,  # hash mode's writes: None, field TTLs where buckets stay compact (Redis 8); True, False
    "COMPRESS_LIB": "snappy",
    "COMPRESS_MIN_LENGTH": 400,
    "LOG_KEY_ERROR": False,
    "MAX_SESSION_BYTES": DEFAULT_MAX_SIZE,  # msgpack bytes of one session: larger saves are refused, loads ignored
    "RETRY": errors.DEFAULT_RETRIES,  # retries of a session operation after a lost connection or a timeout
    "DEGRADED_READS": False,  # middleware: Redis down on a GET/HEAD -> an empty read-only session, not a 503
    "RETRY_AFTER": 5,  # middleware: seconds in the Retry-After header of a 503
    "USER_SESSIONS": False,  # keep an index of each user's sessions (users.py: list them, revoke them)
    "USER_SESSION_METADATA": False,  # ...with the IP address and user agent of each (needs our middleware)
    "USER_SESSION_SEEN_EVERY": 900,  # seconds: how often a session's "last seen" may cost a write
    "USER_SESSIONS_MAX": 100,  # sessions kept per user: a login past it ends the least recently active
    "MIGRATE_FROM": None,  # where sessions used to live: read on a miss and moved here (migration/)
    "MIN_REPLICAS_ACK": 0,  # replicas that must confirm each session write (WAIT); 0: do not wait
    "MIN_REPLICAS_ACK_TIMEOUT": 0.1,  # seconds to wait for them
    "OPERATION_TIMEOUT": None,  # Redis Cluster: seconds a session operation may take, retries included (None: 3)
}
OUR_ENGINE = "cache_sessions.backend"
# Each index script reads a user's whole run (up to twice USER_SESSIONS_MAX records) in
# Redis's one thread: this keeps its worst case within milliseconds.
MAX_USER_SESSIONS = 1000

# Read by the topologies of cache_sessions (not session options: the cache uses them too).
TOPOLOGY_OPTIONS = frozenset({"WEIGHTS"})

# Read by Django's BaseCache, django-redis (7.0) and its connection factories; allowed beside ours.
DJANGO_REDIS_OPTIONS = frozenset(
    {
        "MAX_ENTRIES",
        "CULL_FREQUENCY",
        "CLIENT_CLASS",
        "SERIALIZER",
        "COMPRESSOR",
        "CONNECTION_FACTORY",
        "CONNECTION_POOL_CLASS",
        "CONNECTION_POOL_KWARGS",
        "REDIS_CLIENT_CLASS",
        "REDIS_CLIENT_KWARGS",
        "PARSER_CLASS",
        "USERNAME",
        "PASSWORD",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "IGNORE_EXCEPTIONS",
        "LOG_IGNORED_EXCEPTIONS",
        "CLOSE_CONNECTION",
        "REPLICA_READ_ONLY",
        "SENTINELS",
        "SENTINEL_KWARGS",
        "PICKLE_VERSION",
        "REVERSE_KEY_FUNCTION",
    }
)


@dataclass(frozen=True)
class SessionOptions:
    use_hash: bool
    buckets: int
    key_generator: keys.KeyGenerator | None
    hash_key_generator: keys.KeyGenerator | None
    hash_keys_check_for_expiry: Callable[..., Iterable[bytes | str]] | None
    hash_max_inline: int | None
    field_ttl: bool | None
    codec: Codec
    log_key_error: bool
    retry: Retry
    degraded_reads: bool
    retry_after: int
    user_sessions: bool
    user_session_metadata: bool
    user_session_seen_every: int
    user_sessions_max: int
    acks: Acks | None
    migrate_from: MigrateFrom | None = None
    operation_timeout: float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SessionOptions:
        """Check and resolve the session options (``ImproperlyConfigured`` for a bad value)."""
        values = {**DEFAULTS, **{name: value for name, value in options.items() if name in DEFAULTS}}
        min_length = _int(values, "COMPRESS_MIN_LENGTH", 0)
        buckets = _int(values, "BUCKETS", 1)
        inline = None if values["HASH_MAX_INLINE"] is None else _int(values, "HASH_MAX_INLINE", 5)
        max_size = _int(values, "MAX_SESSION_BYTES", 1)
        compress_lib = values["COMPRESS_LIB"] or ""
        try:
            codec = Codec(compress_lib, min_length, max_size)
        except (ImportError, TypeError) as exc:
            raise ImproperlyConfigured(f"OPTIONS['COMPRESS_LIB'] = {compress_lib!r}: {exc}") from exc
        try:
            retry = errors.retry_policy(values["RETRY"])
        except TypeError as exc:
            raise ImproperlyConfigured(f"OPTIONS['RETRY'] {exc}") from exc
        return cls(
            use_hash=bool(values["USE_HASH"]),
            buckets=buckets,
            key_generator=_callable(values, "KEY_GENERATOR"),
            hash_key_generator=_callable(values, "HASH_KEY_GENERATOR"),
            hash_keys_check_for_expiry=_callable(values, "HASH_KEYS_CHECK_FOR_EXPIRY"),
            hash_max_inline=inline,
            field_ttl=_field_ttl(values),
            codec=codec,
            log_key_error=bool(values["LOG_KEY_ERROR"]),
            retry=retry,
            degraded_reads=bool(values["DEGRADED_READS"]),
            retry_after=_int(values, "RETRY_AFTER", 0),
            user_sessions=bool(values["USER_SESSIONS"]),
            user_session_metadata=bool(values["USER_SESSION_METADATA"]),
            user_session_seen_every=_int(values, "USER_SESSION_SEEN_EVERY", 1),
            user_sessions_max=_int(values, "USER_SESSIONS_MAX", 1, MAX_USER_SESSIONS),
            acks=_acks(values),
            migrate_from=MigrateFrom.parse(values["MIGRATE_FROM"]),
            operation_timeout=_operation_timeout(values),
        )

    def for_records(self) -> SessionOptions:
        """The options of app records (``bucket_*``): any str key, so the default generators."""
        return replace(self, key_generator=None, hash_key_generator=None, migrate_from=None)


@dataclass(frozen=True)
class MigrateFrom:
    """``MIGRATE_FROM``: the engine sessions used to live in, and its parameters.

    A string is an engine's dotted path (``"django.contrib.sessions.backends.db"``)
    or, without a dot, a CACHES alias read as cache_sessions with that alias's
    own OPTIONS. A dict names the ``ENGINE`` (default: cache_sessions, on
    ``ALIAS``, by default this alias) and its parameters; which parameters each
    engine takes is checked when the source is built (``migration.build_source``).
    """

    engine: str
    params: Mapping[str, Any]

    @classmethod
    def parse(cls, value: Any) -> MigrateFrom | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return cls(value, {}) if "." in value else cls(OUR_ENGINE, {"ALIAS": value})
        if isinstance(value, Mapping) and all(isinstance(name, str) for name in value):
            params = dict(value)
            engine = params.pop("ENGINE", OUR_ENGINE)
            if not isinstance(engine, str) or "." not in engine:
                raise ImproperlyConfigured(f"OPTIONS['MIGRATE_FROM']['ENGINE'] must be a dotted path, not {engine!r}")
            if "MIGRATE_FROM" in params:
                raise ImproperlyConfigured("OPTIONS['MIGRATE_FROM'] cannot itself have a MIGRATE_FROM")
            return cls(engine, params)
        raise ImproperlyConfigured(
            f"OPTIONS['MIGRATE_FROM'] must be an engine's dotted path (e.g. 'django.contrib.sessions.backends.db'), "
            f"a CACHES alias, or a dict with 'ENGINE' and its parameters, not {value!r}"
        )


def unknown_options(options: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """OPTIONS names neither cache_sessions nor Django/django-redis know, each with the closest known name."""
    known = [*DEFAULTS, *DJANGO_REDIS_OPTIONS, *TOPOLOGY_OPTIONS]
    return [
        (str(name), next(iter(difflib.get_close_matches(str(name), known, n=1)), None))
        for name in sorted(set(options) - set(known), key=str)
    ]


def _int(values: Mapping[str, Any], name: str, minimum: int, maximum: int | None = None) -> int:
    value = values[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ImproperlyConfigured(f"OPTIONS[{name!r}] must be an int >= {minimum}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"OPTIONS[{name!r}] must be at most {maximum}, not {value!r}")
    return value


def _field_ttl(values: Mapping[str, Any]) -> bool | None:
    value = values["FIELD_TTL"]
    if value is not None and not isinstance(value, bool):
        raise ImproperlyConfigured(
            f"OPTIONS['FIELD_TTL'] must be None (field TTLs where the server keeps buckets compact: Redis 8), "
            f"True (wherever the server has HSETEX) or False (never), not {value!r}"
        )
    return value


def _acks(values: Mapping[str, Any]) -> Acks | None:
    replicas = _int(values, "MIN_REPLICAS_ACK", 0)
    timeout = values["MIN_REPLICAS_ACK_TIMEOUT"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 3600:
        raise ImproperlyConfigured(f"OPTIONS['MIN_REPLICAS_ACK_TIMEOUT'] must be seconds > 0, not {timeout!r}")
    return Acks(replicas, max(1, round(timeout * 1000))) if replicas else None


def _operation_timeout(values: Mapping[str, Any]) -> float | None:
    value = values["OPERATION_TIMEOUT"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value <= 3600:
        raise ImproperlyConfigured(f"OPTIONS['OPERATION_TIMEOUT'] must be seconds from 0.5 to 3600, not {value!r}")
    return float(value)


def _callable(values: Mapping[str, Any], name: str) -> Callable[..., Any] | None:
    value = values[name]
    return None if value is None else keys.load_callable(value, name)
