"""``SessionClient``: django-redis's ``DefaultClient`` plus session storage.

Set it as ``OPTIONS["CLIENT_CLASS"]`` (``cache_sessions.cache.RedisCache``
does that for you). Every ordinary cache method is django-redis's, untouched.
The session options of the alias are resolved once, here; the storage the
session engine uses hangs off the client as ``client.sessions``, and the
``bucket_*`` methods give app code the same bucketed hash storage for small
records of its own (kept apart from sessions).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import DefaultClient

from .buckets import CREATE, UPDATE, UPSERT, HashSessions
from .conf import SessionOptions
from .storage import Sessions, StringSessions

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache


def build_sessions(client: DefaultClient, backend: BaseCache, options: SessionOptions) -> Sessions:
    kind = HashSessions if options.use_hash else StringSessions
    return kind(client, backend, options)


class SessionClient(DefaultClient):
    def __init__(self, server: Any, params: dict[str, Any], backend: BaseCache) -> None:
        super().__init__(server, params, backend)
        self.session_options = SessionOptions.from_options(self._options)
        self.sessions = build_sessions(self, backend, self.session_options)

    @cached_property
    def records(self) -> HashSessions:
        """Bucketed storage for app records, under ``<KEY_PREFIX>:r<VERSION>:``."""
        return HashSessions(self, self._backend, self.session_options, namespace="r")

    def bucket_get(self, key: str, default: Any = None) -> Any:
        """The live record stored under ``key`` (a dict), or ``default``."""
        record = self.records.load(key)
        return default if record is None else record

    def bucket_set(self, key: str, value: Mapping[str, Any], timeout: int) -> None:
        """Store ``value`` (a msgpack-able mapping) for ``timeout`` seconds, replacing any record."""
        self.records.write(key, value, timeout, UPSERT)

    def bucket_add(self, key: str, value: Mapping[str, Any], timeout: int) -> bool:
        """Store ``value`` only if no live record has ``key``; ``True`` if stored."""
        return self.records.write(key, value, timeout, CREATE)

    def bucket_replace(self, key: str, value: Mapping[str, Any], timeout: int) -> bool:
        """Overwrite a live record only (an expired or deleted one stays gone); ``True`` if stored."""
        return self.records.write(key, value, timeout, UPDATE)

    def bucket_exists(self, key: str) -> bool:
        """Whether a live record has ``key``."""
        return self.records.exists(key)

    def bucket_delete(self, key: str) -> None:
        """Remove the record (and its overflow key, if it has one)."""
        self.records.delete(key)


def redis_cache(alias: str) -> DjangoRedisCache:
    """``caches[alias]``, or ``ImproperlyConfigured`` saying what to change."""
    try:
        cache = caches[alias]
    except InvalidCacheBackendError as exc:
        raise ImproperlyConfigured(
            f"There is no cache alias {alias!r} in CACHES. Add CACHES[{alias!r}] with "
            f"'BACKEND': 'cache_sessions.cache.RedisCache', or set SESSION_CACHE_ALIAS to an alias you have."
        ) from exc
    if not isinstance(cache, DjangoRedisCache):
        kind = f"{type(cache).__module__}.{type(cache).__qualname__}"
        raise ImproperlyConfigured(
            f"CACHES[{alias!r}] uses {kind}, but cache_sessions needs a django-redis cache: "
            f"set its BACKEND to 'cache_sessions.cache.RedisCache'."
        )
    return cache


def sessions_for(alias: str) -> Sessions:
    """The session storage of a cache alias (built once per client)."""
    cache = redis_cache(alias)
    client = cache.client
    if isinstance(client, SessionClient):
        return client.sessions
    sessions = getattr(client, "_cache_sessions", None)
    if sessions is None:
        # A stock django-redis client (e.g. DefaultClient): same storage, options read
        # here, kept on the client so that both go away together.
        options = SessionOptions.from_options(getattr(client, "_options", {}))
        sessions = client._cache_sessions = build_sessions(client, cache, options)
    return sessions
