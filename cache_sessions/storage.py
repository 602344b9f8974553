"""Session storage on one Redis: every operation is a single round trip.

``StringSessions`` keeps each session under a key of its own and lets Redis
expire it. It talks to redis-py through the django-redis client of the alias
(``client.get_client()``), so it shares that client's connection pool, and it
works the same on our ``SessionClient`` and on django-redis's stock
``DefaultClient``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import keys
from .codec import CorruptSession

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache
    from django_redis.client import DefaultClient
    from redis import Redis

    from .conf import SessionOptions

suspicious = logging.getLogger("django.security.SuspiciousSession")

F = TypeVar("F", bound=Callable[..., Any])


def reported(method: F) -> F:
    """Turn redis-py's connection failures into django-redis's ``ConnectionInterrupted``.

    redis-py has already retried with backoff (its ``Retry``) by then. The
    error is raised, never swallowed: a Redis outage must not look like an
    empty session, which would log the user out and overwrite their data.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ConnectionInterrupted(connection=None) from exc

    return wrapper  # type: ignore[return-value]


class Sessions:
    """What both storage modes share: the client, the codec, the namespace."""

    def __init__(self, client: DefaultClient, backend: BaseCache, options: SessionOptions, namespace: str = "s"):
        self.client = client
        self.options = options
        self.codec = options.codec
        self.prefix = keys.namespace(backend.key_func, backend.key_prefix, backend.version, namespace)

    def redis(self) -> Redis:
        # Always the primary: a replica that lags behind would log users out.
        return self.client.get_client(write=True)

    def name(self, generator: keys.KeyGenerator, session_key: str) -> bytes:
        """What a KEY_GENERATOR-like option makes of a session key, as bytes."""
        name = generator(session_key)
        if isinstance(name, str):
            name = name.encode()
        if not isinstance(name, bytes) or not name:
            raise TypeError(f"{generator!r} returned {name!r}: it must return non-empty bytes or str")
        return name

    # The contract of a storage mode (each method: one round trip).
    def load(self, session_key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def exists(self, session_key: str) -> bool:
        raise NotImplementedError

    def create(self, session_key: str, session: dict[str, Any], ttl: int) -> bool:
        raise NotImplementedError

    def update(self, session_key: str, session: dict[str, Any], ttl: int) -> bool:
        raise NotImplementedError

    def delete(self, session_key: str) -> None:
        raise NotImplementedError

    def clear_expired(self) -> None:
        raise NotImplementedError

    def describe(self, session_key: str) -> dict[str, Any]:
        raise NotImplementedError

    def locate(self, session_key: str) -> tuple[bytes, ...]:
        """The Redis names a session key maps to."""
        raise NotImplementedError

    def decode(self, data: bytes | None) -> dict[str, Any] | None:
        """The session in stored bytes; None when missing, expired or unreadable."""
        if data is None:
            return None
        try:
            session, expires_at = self.codec.decode(data)
        except CorruptSession as exc:
            suspicious.warning("Unreadable session data in Redis (%s); starting an empty session.", exc)
            return None
        if expires_at is not None and expires_at <= time.time():
            return None
        return session


class StringSessions(Sessions):
    """One Redis string per session, named ``<KEY_PREFIX>:s<VERSION>:<KEY_GENERATOR(key)>``."""

    def redis_key(self, session_key: str) -> bytes:
        return self.prefix + self.name(self.options.key_generator or keys.text, session_key)

    def locate(self, session_key: str) -> tuple[bytes, ...]:
        return (self.redis_key(session_key),)

    def describe(self, session_key: str) -> dict[str, Any]:
        """Where and how a session is stored (for humans: debug pages, shells)."""
        key = self.redis_key(session_key)
        redis = self.redis()
        return {"mode": "string", "key": key, "ttl": redis.ttl(key), "bytes": redis.strlen(key)}

    @reported
    def load(self, session_key: str) -> dict[str, Any] | None:
        return self.decode(self.redis().get(self.redis_key(session_key)))

    @reported
    def exists(self, session_key: str) -> bool:
        return bool(self.redis().exists(self.redis_key(session_key)))

    @reported
    def create(self, session_key: str, session: dict[str, Any], ttl: int) -> bool:
        """Store a new session; ``False`` if the key is taken (``SET NX``)."""
        if ttl <= 0:
            return True  # expired on arrival: nothing to store
        value = self.codec.encode(session)
        return bool(self.redis().set(self.redis_key(session_key), value, ex=ttl, nx=True))

    @reported
    def update(self, session_key: str, session: dict[str, Any], ttl: int) -> bool:
        """Overwrite a live session; ``False`` if it is gone (``SET XX``: never resurrects)."""
        key = self.redis_key(session_key)
        if ttl <= 0:
            self.redis().delete(key)
            return True
        value = self.codec.encode(session)
        return bool(self.redis().set(key, value, ex=ttl, xx=True))

    @reported
    def delete(self, session_key: str) -> None:
        self.redis().delete(self.redis_key(session_key))

    def clear_expired(self) -> None:
        """Redis expires string keys itself: nothing to sweep."""
