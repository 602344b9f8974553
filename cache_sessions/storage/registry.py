"""The storage of each cache alias, built once per process: the storage mode its options
ask for, on the topology its client gives.

``sessions_for(alias)`` is what every part of the engine asks for an alias's
storage (``SessionStore``, the API of ``users.py``, the commands, the checks).
``build`` makes one: ``HashStorage`` or ``StringStorage`` (``USE_HASH``), given
the topology of the alias's django-redis client: the one its class names
(``topology_class``: ``ClusterClient``, ``PartitionedClient``,
``SentinelSessionClient``), else the one its primary's connection pool shows
(django-redis's stock clients: a Sentinel service, or one server). This is the
one place a pool's type is looked at.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import ShardClient
from redis.sentinel import SentinelConnectionPool

from ..topology.base import Topology
from ..topology.sentinel import SentinelTopology
from .base import Storage
from .buckets import HashStorage
from .options import SessionOptions
from .strings import StringStorage

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache


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


def topology_of(client: Any, options: SessionOptions) -> Topology:
    """The topology of a django-redis client: the one its class names, else the one its
    primary's pool shows (a Sentinel pool: a primary that can move; any other: one server)."""
    kind: type[Topology] | None = getattr(client, "topology_class", None)
    if kind is None:
        pool = getattr(client.get_client(write=True), "connection_pool", None)
        kind = SentinelTopology if isinstance(pool, SentinelConnectionPool) else Topology
    return kind(client, options.retry, options.operation_timeout)


def build(client: Any, backend: BaseCache, options: SessionOptions) -> Storage:
    """The session storage of ``client`` (the alias's django-redis client, ``backend`` its cache)."""
    mode: type[Storage] = HashStorage if options.use_hash else StringStorage
    return mode(client, backend, options, topology_of(client, options))


def sessions_for(alias: str) -> Storage:
    """The session storage of a cache alias: built once per process and settings.

    Django makes a cache object, and so a django-redis client, per thread and
    under ASGI per request (per asyncio task): building the storage from it
    each time cost more than the request's own session work. The storage only needs the redis-py
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
        sessions = build(client, cache, SessionOptions.from_options(getattr(client, "_options", {})))
        _built[alias] = (caches_setting, sessions)  # the setting is held, so its id is never reused
    return sessions


_built: dict[str, tuple[object, Storage]] = {}
_building = threading.Lock()
