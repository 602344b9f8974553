"""Where a storage's Redis clients come from, and what a failure there means.

The storage modes (string, hash) are written once; a topology only answers
"which client holds this name?", "which clients hold anything?" (what sweeps,
statistics and checks walk) and "is this failure worth a retry?":

- ``Single``: one server, the alias's primary: a standalone Redis, or the
  primary of a Sentinel service. A Sentinel primary can move: there a
  ``READONLY`` reply means "the primary you reach was just demoted", which a
  retry on the new primary cures, so it is retried after asking the
  sentinels where the primary is now.
- ``Partitioned``: several independent servers, each name on the one weighted
  rendezvous hashing picks (``partitioned.PartitionedClient``).

Each topology is built from, and keeps, nothing but the alias's django-redis
client: its clients come from the pools django-redis keeps per process, so an
asyncio executor can mirror them per event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import RedisError

from . import errors

if TYPE_CHECKING:
    from redis import Redis


class Topology(Protocol):
    def redis_for(self, name: bytes) -> Redis: ...

    def servers(self) -> list[Redis]: ...

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]: ...

    def is_retryable(self, exc: BaseException) -> bool: ...

    def after_failure(self, redis: Redis, exc: BaseException) -> None: ...


class Single:
    """One server: a standalone Redis, or the primary of a Sentinel service."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._moves: bool | None = None

    def redis(self) -> Redis:
        # Always the primary: a replica that lags behind would log users out.
        redis: Redis = self.client.get_client(write=True)
        return redis

    def redis_for(self, name: bytes) -> Redis:
        return self.redis()

    def servers(self) -> list[Redis]:
        return [self.redis()]

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        return [(self.redis(), list(names))]

    def moves(self) -> bool:
        """Whether the primary can move (a Sentinel service)."""
        if self._moves is None:
            from redis.sentinel import SentinelConnectionPool

            self._moves = isinstance(self.redis().connection_pool, SentinelConnectionPool)
        return self._moves

    def is_retryable(self, exc: BaseException) -> bool:
        return errors.is_retryable(exc) or (errors.is_readonly(exc) and self.moves())

    def after_failure(self, redis: Redis, exc: BaseException) -> None:
        # A lost connection is dropped by redis-py itself; one to a demoted primary is not.
        if errors.is_readonly(exc) and self.moves():
            pool: Any = redis.connection_pool
            with contextlib.suppress(RedisError, OSError):  # if not now, the retry asks when it connects
                pool.get_master_address()  # redis-py closes the idle connections if the primary moved


class Partitioned:
    """Several independent servers; each name lives on one of them (``partitioned.py``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def redis_for(self, name: bytes) -> Redis:
        redis: Redis = self.client.server_for(name)
        return redis

    def servers(self) -> list[Redis]:
        servers: list[Redis] = self.client.servers()
        return servers

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        grouped: list[tuple[Redis, list[bytes]]] = self.client.by_server(names)
        return grouped

    def is_retryable(self, exc: BaseException) -> bool:
        return errors.is_retryable(exc)

    def after_failure(self, redis: Redis, exc: BaseException) -> None:
        pass  # redis-py has already dropped the broken connection


def of(client: Any) -> Topology:
    """The topology of a django-redis client."""
    from .partitioned import PartitionedClient

    if isinstance(client, PartitionedClient):
        return Partitioned(client)
    return Single(client)


def label(redis: Redis) -> str:
    """A server as reports name it: ``10.0.0.2:6379/1``, ``unix:///run/redis.sock?db=1``,
    ``mymaster/1 (Sentinel)``; never its password."""
    pool: Any = redis.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if getattr(pool, "service_name", None):
        return f"{pool.service_name}/{db} (Sentinel)"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
