"""``RedisCache``: django-redis's cache backend with cache_sessions' clients as its default.

The client class follows from the OPTIONS, unless ``CLIENT_CLASS`` names one:
``SENTINELS`` -> ``sentinel.SentinelSessionClient`` (a Sentinel service that
follows failovers), ``WEIGHTS`` -> ``partitioned.PartitionedClient`` (several
servers, by weight), else ``client.SessionClient``.
"""

from __future__ import annotations

from typing import Any

from django_redis.cache import RedisCache as DjangoRedisCache
from redis import Redis

CLIENT_CLASS = "cache_sessions.client.SessionClient"
SENTINEL_CLIENT_CLASS = "cache_sessions.sentinel.SentinelSessionClient"
PARTITIONED_CLIENT_CLASS = "cache_sessions.partitioned.PartitionedClient"


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = params.get("OPTIONS") or {}
        if "CLIENT_CLASS" not in options:
            client = SENTINEL_CLIENT_CLASS if options.get("SENTINELS") else CLIENT_CLASS
            client = PARTITIONED_CLIENT_CLASS if "WEIGHTS" in options else client
            params = {**params, "OPTIONS": {**options, "CLIENT_CLASS": client}}
        super().__init__(server, params)

    def get_client(self, key: Any = None, *, write: bool = True) -> Redis:
        """The raw redis-py client of this alias; sessions and your own commands share its
        pool. On a partitioned alias, the client of the server holding the Redis key ``key``
        (required there; elsewhere unused)."""
        client = self.client
        if key is not None and hasattr(client, "server_for"):
            redis: Redis = client.server_for(key)
        else:
            redis = client.get_client(write=write)
        return redis
