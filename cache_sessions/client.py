"""``SessionClient``: django-redis's ``DefaultClient`` plus bucketed records.

Set it as ``OPTIONS["CLIENT_CLASS"]`` (``cache_sessions.cache.RedisCache``
does that for you). Every ordinary cache method is django-redis's, untouched,
and building the client reads no session option: the session storage of an
alias (``sessions_for``) is made when sessions first use it, so a session
option can never break the cache. The ``bucket_*`` methods give app code the
same bucketed hash storage for small records of its own, kept apart from
sessions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import DefaultClient, ShardClient

from .buckets import CREATE, UPDATE, UPSERT, HashSessions
from .conf import SessionOptions
from .storage import Sessions
from .strings import StringSessions

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

MAX_RECORD_KEY_LENGTH = 1024


class SessionClient(DefaultClient):
    # The storage of each mode on this client's topology (one server here; see cluster.py).
    string_storage: type[Sessions] = StringSessions
    hash_storage: type[HashSessions] = HashSessions

    @cached_property
    def records(self) -> HashSessions:
        """Bucketed storage for app records, under ``<KEY_PREFIX>:r<VERSION>:``."""
        options = SessionOptions.from_options(self._options).for_records()
        return self.hash_storage(self, self._backend, options, namespace="r")

    def bucket_get(self, key: str, default: Any = None) -> Any:
        """The live record stored under ``key`` (a dict), or ``default``."""
        record = self.records.load(_record_key(key))
        return default if record is None else record

    def bucket_set(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Store ``value`` (a msgpack-able mapping) for ``timeout`` seconds, replacing any record.

        ``True`` when stored; a ``timeout`` <= 0 deletes the record and gives ``False``."""
        return self._write(key, value, timeout, UPSERT)

    def bucket_add(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Store ``value`` only if no live record has ``key``; ``True`` if stored."""
        return self._write(key, value, timeout, CREATE)

    def bucket_replace(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Overwrite a live record only (an expired or deleted one stays gone); ``True`` if stored."""
        return self._write(key, value, timeout, UPDATE)

    def bucket_exists(self, key: str) -> bool:
        """Whether a live record has ``key``."""
        return self.records.exists(_record_key(key))

    def bucket_delete(self, key: str) -> None:
        """Remove the record (and its overflow key, if it has one)."""
        self.records.delete(_record_key(key))

    def _write(self, key: str, value: Mapping[str, Any], timeout: float, mode: int) -> bool:
        key = _record_key(key)
        if not isinstance(value, Mapping):
            raise TypeError(f"a bucket record is a mapping (a dict), not {type(value).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise TypeError(f"timeout must be a number of seconds > 0, not {timeout!r} (records always expire)")
        ttl = -int(-timeout // 1)  # whole seconds, rounded up: 0.5 s lives 1 s
        stored = self.records.write(key, value, ttl, mode)
        return stored and ttl > 0


def _record_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a bucket record key is a non-empty str, not {key!r}")
    if len(key) > MAX_RECORD_KEY_LENGTH:
        raise ValueError(f"a bucket record key is at most {MAX_RECORD_KEY_LENGTH} characters")
    return key


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


def build_sessions(client: DefaultClient, backend: BaseCache, options: SessionOptions) -> Sessions:
    if options.use_hash:
        return getattr(client, "hash_storage", HashSessions)(client, backend, options)
    return getattr(client, "string_storage", StringSessions)(client, backend, options)


def sessions_for(alias: str) -> Sessions:
    """The session storage of a cache alias: built once per process and settings.

    Django makes a cache object, and so a django-redis client, per thread and
    under ASGI per request (per asyncio task): building the storage from it
    each time cost ~100 us a request. The storage only needs the redis-py
    client, which is safe to share between threads, so it is kept here for as
    long as ``settings.CACHES`` is the same object (tests that override the
    setting get a new one).
    """
    caches_setting = settings.CACHES
    built = _built.get(alias)
    if built is not None and built[0] is caches_setting:
        return built[1]
    with _building:
        cache = redis_cache(alias)
        client = cache.client
        if isinstance(client, ShardClient):
            raise ImproperlyConfigured(
                f"CACHES[{alias!r}] uses django-redis's ShardClient, which cannot give cache_sessions the "
                f"client of a key. To spread sessions over several servers, use "
                f"OPTIONS['CLIENT_CLASS'] = 'cache_sessions.partitioned.PartitionedClient' (or set "
                f"OPTIONS['WEIGHTS'], one weight per LOCATION, with cache_sessions.cache.RedisCache)."
            )
        sessions = build_sessions(client, cache, SessionOptions.from_options(getattr(client, "_options", {})))
        _built[alias] = (caches_setting, sessions)  # the setting is held, so its id is never reused
    return sessions


_built: dict[str, tuple[object, Sessions]] = {}
_building = threading.Lock()
