"""``MIGRATE_FROM`` -> the old store it names: the one module that imports every source.

``build_source`` turns the option (``storage/options.MigrateFrom``) into a
``Source`` (``base.py``) and checks its parameters: Django's engines
(``django.py``), cache_sessions with other options and django-redis-sessions
(``redis.py``), django-redisession (``redisession.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.contrib.sessions.backends import cache, cached_db, db, file, signed_cookies
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import keys
from ..format.compression import load
from ..storage.base import Storage
from ..storage.options import DEFAULTS, OUR_ENGINE, MigrateFrom, SessionOptions
from ..storage.registry import build as build_sessions
from ..storage.registry import redis_cache
from .base import Source
from .django import CachedDbSource, CacheSource, DbSource, FileSource, SignedCookieSource
from .redis import CacheSessionsSource, RedisSessionsSource
from .redisession import RedisessionSource

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
    if "ALIAS" in params:
        prefix = params.get("PREFIX", (getattr(settings, "SESSION_REDIS", None) or {}).get("prefix", ""))
        client = redis_cache(params["ALIAS"]).client.get_client(write=True)
        return RedisSessionsSource(lambda key: client, prefix, f"CACHES[{params['ALIAS']!r}]")
    try:  # django-redis-sessions, installed only while migrating from it
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
