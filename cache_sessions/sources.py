"""Where sessions used to live: the old stores ``MIGRATE_FROM`` names.

A ``Source`` is an old store. It reads one session (its data and absolute
expiry), deletes it, and, when the store can list what it holds, walks its
sessions in batches for ``migratesessions``. Each reads the data as it lies
in the store, decoded the old engine's way, so the old engine needs no
request of its own and does not even have to run here: Django's engines are
in ``django_sources.py``; sessions in Redis written by cache_sessions with
other options and by django-redis-sessions in ``redis_sources.py``; by
django-redisession in ``redisession.py``. ``build_source`` turns the
``MIGRATE_FROM`` option into one of them and checks its parameters.

A source only ever receives a key its ``accepts`` let through: for the
key-based stores that is a key cache_sessions itself would accept
(``keys.is_valid_session_key``), so a malformed cookie never reaches them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import keys

if TYPE_CHECKING:
    from .storage.base import Storage
    from .storage.options import MigrateFrom

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


PARAMETERS = {
    "cache": {"CACHE_ALIAS"},
    "cached_db": {"CACHE_ALIAS"},
    "file": {"FILE_PATH"},
    "redis_sessions": {"ALIAS", "PREFIX"},
    "redisession": {"ALIAS", "SERVER", "USE_HASH", "KEY_GENERATOR", "HASH_KEY_GENERATOR", "COMPRESS_LIB"},
}


def build_source(spec: MigrateFrom, sessions: Storage, alias: str) -> Source:
    """The old store ``spec`` names, for ``sessions`` (the storage of ``alias``)."""
    try:
        return _build(spec, sessions, alias)
    except ImproperlyConfigured as exc:
        if "MIGRATE_FROM" in str(exc):
            raise
        raise ImproperlyConfigured(f"OPTIONS['MIGRATE_FROM'] of CACHES[{alias!r}]: {exc}") from exc


def _cache_alias(params: dict[str, Any]) -> str:
    """The CACHES alias Django's cache engines used (their SESSION_CACHE_ALIAS, now ours)."""
    cache_alias: str = params.get("CACHE_ALIAS", "default")
    if cache_alias not in settings.CACHES:
        raise ImproperlyConfigured(f"OPTIONS['MIGRATE_FROM']['CACHE_ALIAS']: there is no CACHES[{cache_alias!r}]")
    return cache_alias


def _build(spec: MigrateFrom, sessions: Storage, alias: str) -> Source:
    from django.contrib.sessions.backends import cache, cached_db, db, file, signed_cookies

    from .django_sources import CachedDbSource, CacheSource, DbSource, FileSource, SignedCookieSource
    from .storage.options import OUR_ENGINE

    engine, params = spec.engine, dict(spec.params)
    if engine == OUR_ENGINE:
        return _cache_sessions_source(sessions, alias, params)
    if engine == "redis_sessions.session":
        return _redis_sessions_source(_checked(params, "redis_sessions", engine))
    if engine == "redisession.backend":
        return _redisession_source(_checked(params, "redisession", engine))
    try:
        store = import_string(f"{engine}.SessionStore")
    except ImportError as exc:
        raise ImproperlyConfigured(f"OPTIONS['MIGRATE_FROM']: cannot import {engine}.SessionStore: {exc}") from exc
    kinds: list[tuple[type[Any], str, Callable[[dict[str, Any]], Source]]] = [
        (signed_cookies.SessionStore, "signed_cookies", lambda p: SignedCookieSource()),
        (cached_db.SessionStore, "cached_db", lambda p: CachedDbSource(store, _cache_alias(p))),
        (db.SessionStore, "db", lambda p: DbSource(store)),
        (file.SessionStore, "file", lambda p: FileSource(store, p.get("FILE_PATH"))),
        (cache.SessionStore, "cache", lambda p: CacheSource(store, _cache_alias(p))),
    ]
    for base, kind, make in kinds:
        if isinstance(store, type) and issubclass(store, base):
            return make(_checked(params, kind, engine))
    raise ImproperlyConfigured(
        f"OPTIONS['MIGRATE_FROM']: {engine} is not an engine cache_sessions can read (Django's db, cache, "
        f"cached_db, file, signed_cookies or engines built on them; redis_sessions.session; redisession.backend; "
        f"cache_sessions on an alias)"
    )


def _checked(params: dict[str, Any], kind: str, engine: str) -> dict[str, Any]:
    unknown = set(params) - PARAMETERS.get(kind, set())
    if unknown:
        allowed = ", ".join(sorted(PARAMETERS.get(kind, ()))) or "none"
        raise ImproperlyConfigured(
            f"OPTIONS['MIGRATE_FROM'] for {engine} has {', '.join(sorted(unknown))}; it takes: {allowed}"
        )
    return params


def _cache_sessions_source(ours: Storage, alias: str, params: dict[str, Any]) -> Source:
    from .redis_sources import CacheSessionsSource
    from .storage.options import DEFAULTS, SessionOptions
    from .storage.registry import build as build_sessions
    from .storage.registry import redis_cache

    old_alias = params.pop("ALIAS", alias)
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(
            f"OPTIONS['MIGRATE_FROM'] has {', '.join(sorted(unknown))}: not cache_sessions options"
        )
    backend = redis_cache(old_alias)
    client = backend.client
    old_options = {**getattr(client, "_options", {}), **params, "MIGRATE_FROM": None}
    old = build_sessions(client, backend, SessionOptions.from_options(old_options))
    same = old_alias == alias
    if same and type(old) is type(ours) and _layout(old) == _layout(ours):
        raise ImproperlyConfigured(
            f"OPTIONS['MIGRATE_FROM'] of CACHES[{alias!r}] names the very storage its sessions live in: "
            f"give the options sessions were stored with before (USE_HASH, BUCKETS, KEY_GENERATOR...)"
        )
    return CacheSessionsSource(old, ours, old_alias, same)


def _layout(sessions: Storage) -> tuple[Any, ...]:
    options = sessions.options
    return sessions.prefix, options.buckets, options.key_generator, options.hash_key_generator


def _redis_sessions_source(params: dict[str, Any]) -> Source:
    from .redis_sources import RedisSessionsSource
    from .storage.registry import redis_cache

    if "ALIAS" in params:
        prefix = params.get("PREFIX", (getattr(settings, "SESSION_REDIS", None) or {}).get("prefix", ""))
        client = redis_cache(params["ALIAS"]).client.get_client(write=True)
        return RedisSessionsSource(lambda key: client, prefix, f"CACHES[{params['ALIAS']!r}]")
    try:
        from redis_sessions import settings as old_settings
        from redis_sessions.session import RedisServer
    except ImportError as exc:
        raise ImproperlyConfigured(
            "OPTIONS['MIGRATE_FROM'] = 'redis_sessions.session' reads the server of settings.SESSION_REDIS through "
            "django-redis-sessions: keep it installed while migrating, or give {'ENGINE': ..., 'ALIAS': <a CACHES "
            f"alias on that server>}} ({exc})"
        ) from exc
    # Its server and prefix, exactly as the package resolved them (it reads SESSION_REDIS at import).
    prefix = params.get("PREFIX", old_settings.SESSION_REDIS_PREFIX) or ""
    partitioned = old_settings.SESSION_REDIS_POOL is not None
    return RedisSessionsSource(lambda key: RedisServer(key).get(), prefix, "settings.SESSION_REDIS", partitioned)


def _redisession_source(params: dict[str, Any]) -> Source:
    import redis

    from .format.compression import load
    from .redisession import RedisessionSource
    from .storage.registry import redis_cache

    config = {**(getattr(settings, "REDIS_SESSION_CONFIG", None) or {}), **params}
    if "ALIAS" in params:
        client, where = redis_cache(params["ALIAS"]).client.get_client(write=True), f"CACHES[{params['ALIAS']!r}]"
    else:
        server = config.get("SERVER", {})
        if isinstance(server, str):  # a name in settings.REDIS_CONFIG (redisession.helper.get_redis)
            server = getattr(settings, "REDIS_CONFIG", {"default": {}})[server]
        client, where = redis.Redis(**server), "REDIS_SESSION_CONFIG['SERVER']"
    generator = keys.load_callable(config.get("KEY_GENERATOR", bytes.fromhex), "MIGRATE_FROM.KEY_GENERATOR")
    hash_generator = keys.load_callable(
        config.get("HASH_KEY_GENERATOR", lambda key: bytes.fromhex(key[:4])), "MIGRATE_FROM.HASH_KEY_GENERATOR"
    )
    try:
        compression = load(config.get("COMPRESS_LIB", "snappy"))
    except (ImportError, TypeError) as exc:
        raise ImproperlyConfigured(f"OPTIONS['MIGRATE_FROM']['COMPRESS_LIB']: {exc}") from exc
    return RedisessionSource(client, bool(config.get("USE_HASH", True)), generator, hash_generator, compression, where)
