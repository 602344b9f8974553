"""``RedisCache``: django-redis's cache backend with ``SessionClient`` as its default client."""

from __future__ import annotations

from typing import Any

from django_redis.cache import RedisCache as DjangoRedisCache
from redis import Redis

CLIENT_CLASS = "cache_sessions.client.SessionClient"


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = params.get("OPTIONS") or {}
        if "CLIENT_CLASS" not in options:
            params = {**params, "OPTIONS": {**options, "CLIENT_CLASS": CLIENT_CLASS}}
        super().__init__(server, params)

    def get_client(self, key: Any = None, *, write: bool = True) -> Redis:
        """The raw redis-py client of this alias (``key`` is unused, kept for
        django-redis's signature). Sessions and your own commands share its pool."""
        redis: Redis = self.client.get_client(write=write)
        return redis
