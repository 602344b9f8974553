"""cache_sessions: Django sessions stored through a django-redis cache alias."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

__version__ = "0.1.0"


def get_client(alias: str = "default", *, write: bool = True, key: str | bytes | None = None) -> Redis:
    """The raw redis-py client behind a django-redis cache alias.

    The successor of django-redisession's ``helper.get_redis(name)``: the
    CACHES alias plays the part of the old registry name. A partitioned alias
    has a client per server: ``key`` (a Redis key) says which one.
    """
    # Imported here, not at the top: importing the package (its __version__, cache_sessions.testing)
    # must neither need Django's settings nor load the engine.
    from .storage.registry import redis_cache

    client = redis_cache(alias).client
    if key is not None and hasattr(client, "server_for"):
        redis: Redis = client.server_for(key)
    else:
        redis = client.get_client(write=write)
    return redis
