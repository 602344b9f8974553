"""``SessionClient``: django-redis's ``DefaultClient`` plus session storage.

Set it as ``OPTIONS["CLIENT_CLASS"]`` (``cache_sessions.cache.RedisCache``
does that for you). Every ordinary cache method is django-redis's, untouched;
the session options of the alias are resolved once, here, and the storage
that the session engine uses hangs off the client as ``client.sessions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import DefaultClient

from .conf import SessionOptions
from .storage import StringSessions

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache


class SessionClient(DefaultClient):
    def __init__(self, server: Any, params: dict[str, Any], backend: BaseCache) -> None:
        super().__init__(server, params, backend)
        self.session_options = SessionOptions.from_options(self._options)
        self.sessions = StringSessions(self, backend, self.session_options)


_stock_clients: WeakKeyDictionary[DefaultClient, StringSessions] = WeakKeyDictionary()


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


def sessions_for(alias: str) -> StringSessions:
    """The session storage of a cache alias (built once per client)."""
    cache = redis_cache(alias)
    client = cache.client
    if isinstance(client, SessionClient):
        return client.sessions
    sessions = _stock_clients.get(client)
    if sessions is None:
        # A stock django-redis client (e.g. DefaultClient): same storage, options read here.
        options = SessionOptions.from_options(getattr(client, "_options", {}))
        sessions = _stock_clients[client] = StringSessions(client, cache, options)
    return sessions
