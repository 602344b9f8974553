"""Three independent servers for the partitioned configurations, and a raw view over them.

The second server wants a password, given in its URL (a password per server).
``raw(alias)`` is what a test's ``redis`` means: the alias's one client, or,
on a partitioned alias, a ``Shards`` view that sends each command about a
key to the server holding it and adds up ``dbsize`` (``flushdb`` flushes
every server).
"""

from __future__ import annotations

import functools
from typing import Any

from django.core.cache import caches
from redis import Redis

from cache_sessions.partitioned import PartitionedClient
from cache_sessions.testing import RedisServer
from tests.support.servers import RECOMMENDED

PASSWORD = "shard-secret"


@functools.cache
def servers() -> list[RedisServer]:
    started = [RedisServer(config=RECOMMENDED).start() for _ in range(3)]
    Redis(port=started[1].port).config_set("requirepass", PASSWORD)  # after start: RedisServer PINGs it unauthenticated
    return started


def url(index: int, db: int) -> str:
    """The URL of server ``index``, DB ``db`` (with its password, where it has one)."""
    auth = f":{PASSWORD}@" if index == 1 else ""
    return f"redis://{auth}127.0.0.1:{servers()[index].port}/{db}"


class Shards:
    """A stand-in for a raw client over every server of a partitioned alias."""

    def __init__(self, client: PartitionedClient) -> None:
        self.client = client

    def dbsize(self) -> int:
        return sum(redis.dbsize() for redis in self.client.servers())

    def flushdb(self) -> None:
        for redis in self.client.servers():
            redis.flushdb()

    def keys(self, pattern: Any = "*") -> list[bytes]:
        return [key for redis in self.client.servers() for key in redis.keys(pattern)]

    def config_resetstat(self) -> None:
        for redis in self.client.servers():
            redis.config_resetstat()

    def info(self, section: str) -> dict[str, Any]:
        """Every server's INFO section in one dict (what a test looks for in any of them)."""
        merged: dict[str, Any] = {}
        for redis in self.client.servers():
            merged.update(redis.info(section))
        return merged

    def __getattr__(self, command: str) -> Any:
        def on_the_server_of_the_key(key: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.client.server_for(key), command)(key, *args, **kwargs)

        return on_the_server_of_the_key


def raw(alias: str = "sessions") -> Any:
    """The raw client of ``alias`` (a ``Shards`` view when it is partitioned)."""
    client = caches[alias].client
    return Shards(client) if isinstance(client, PartitionedClient) else client.get_client()
