"""Sentinel on ``redis.asyncio``: per event loop, a pool of the primary that follows failovers
as the sync pools do.

``client_for`` gives the running loop's ``redis.asyncio`` client for a Sentinel
pool of the alias (``SentinelTopology.aredis``). Its pool (``PrimaryPool``,
redis-py's asyncio Sentinel pool, one per loop and sync pool, closed with its
loop: ``async_clients.per_loop``) takes the connection settings of the sync pool
and, before handing out a connection, does what the sync pools do:

- it waits while the sync pool is paused (the follower heard ``+selected-slave``:
  a replica is about to be promoted), at most as long as the pause lasts;
- it takes the primary the sync pool now knows (the follower heard
  ``+switch-master``, or a sync discovery found another one), closes its idle
  connections to the old one, and reconnects a connection still open to it;
- it asks the sentinels itself (``discover_master``: the newest configuration,
  as ``NewestSentinel``, every sentinel at once on asyncio) when it knows no primary:
  at first, and after a failure, which ``SentinelTopology.aretried`` reports
  (``forget_primary``) before its retry: a lost connection, or READONLY from a
  demoted primary (redis-py's asyncio Sentinel connection turns that into a
  ``ConnectionError``).

The follower (``follower.py``: threads, one per process and sentinel group,
started again after fork) is the sync pool's; this pool only reads what it knows.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis import sentinel as sync_sentinel
from redis.asyncio import Redis
from redis.asyncio import sentinel as async_sentinel
from redis.exceptions import ConnectionError, TimeoutError

from . import async_clients, discovery

PAUSE_POLL_SECONDS = 0.005  # how often a paused command looks whether the failover is over
_TWINS: tuple[tuple[type[Any], type[Any]], ...] = (
    (sync_sentinel.SentinelManagedSSLConnection, async_sentinel.SentinelManagedSSLConnection),
    (sync_sentinel.SentinelManagedConnection, async_sentinel.SentinelManagedConnection),
)


def client_for(sync_redis: Any) -> Redis:
    """The running loop's ``redis.asyncio`` client of the primary of ``sync_redis``'s Sentinel pool."""
    pool = sync_redis.connection_pool
    client: Redis = async_clients.per_loop(pool, lambda: Redis(connection_pool=PrimaryPool(pool)))
    return client


class PrimaryPool(async_sentinel.SentinelConnectionPool):
    """redis-py's asyncio Sentinel pool of a primary, following what the sync ``pool`` knows."""

    def __init__(self, pool: Any) -> None:
        twin = async_clients.twin_of(pool.connection_class, _TWINS)
        kwargs = async_clients.twin_kwargs(pool.connection_kwargs, twin)
        kwargs.pop("connection_pool", None)  # the sync pool's: redis-py sets this pool's own
        super().__init__(  # type: ignore[no-untyped-call]
            pool.service_name,
            _Discovery(pool.sentinel_manager),
            connection_class=twin,
            max_connections=pool.max_connections,
            check_connection=pool.check_connection,
            **kwargs,
        )
        self.pool = pool
        self.seen: tuple[str, int] | None = None  # the sync pool's primary when last looked at
        self.discovering: asyncio.Future[tuple[str, int]] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        await self._follow()
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        address = self.master_address
        if address is not None and connection.is_connected and (connection.host, connection.port) != address:
            try:  # in use when the primary moved, idle since: to the new one
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def _follow(self) -> None:
        """Wait out a pause, then take the primary the sync pool knows if it changed."""
        follower = getattr(self.pool, "follower", None)
        if follower is not None:
            follower.ensure_running()
            resumed = self.pool.resumed
            while not resumed.is_set():
                left = self.pool.paused_until - time.monotonic()
                if left <= 0:
                    resumed.set()  # the announced failover did not come in time: carry on (as the sync pool)
                    break
                await asyncio.sleep(min(PAUSE_POLL_SECONDS, left))
        known = getattr(getattr(self.pool, "proxy", None), "master_address", None)
        if known is not None and known != self.seen:
            self.seen = known
            await self._use(known)

    async def _use(self, address: tuple[str, int]) -> None:
        if address != self.master_address:
            self.master_address = address
            await self.disconnect(inuse_connections=False)  # idle ones reconnect to it when next used

    async def get_master_address(self) -> tuple[str, int]:
        """The primary (asked by each connection as it connects): the one known, else the
        sentinels' answer (one question at a time, however many connections wait)."""
        if self.master_address is not None:
            known: tuple[str, int] = self.master_address
            return known
        if self.discovering is None:
            self.discovering = asyncio.ensure_future(self.sentinel_manager.discover_master(self.service_name))
            self.discovering.add_done_callback(_retrieved)  # a failure nobody awaits any more is not logged
        discovering = self.discovering
        try:
            address: tuple[str, int] = await asyncio.shield(discovering)
        finally:
            if self.discovering is discovering and discovering.done():
                self.discovering = None
        await self._use(address)
        return address

    async def forget_primary(self) -> None:
        """After a failure: ask the sentinels again when next connecting."""
        self.master_address = None
        await self.disconnect(inuse_connections=False)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Discovery:
    """``discover_master`` on asyncio, with the sentinels and judgement of the sync ``manager``."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        sentinels = list(self.manager.sentinels)
        answers = await asyncio.gather(*(self._ask(sentinel, service_name) for sentinel in sentinels))
        return discovery.primary(self.manager, service_name, list(zip(sentinels, answers, strict=True)))

    async def _ask(self, sentinel: Any, service_name: str) -> discovery.Answer:
        pipe = discovery.queued(async_clients.client_for(sentinel).pipeline(transaction=False), service_name)
        try:
            answer: list[Any] = await pipe.execute(raise_on_error=False)
        except (ConnectionError, TimeoutError) as exc:
            return exc
        return answer
