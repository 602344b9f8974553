"""A Sentinel service as a topology: one primary that can move, and the pools that follow it.

``SentinelTopology`` is the one-server topology whose failures mean more: a
write a replica refuses (``READONLY``) means the server reached was just
demoted, which a retry on the new primary cures (after asking the sentinels
where it is now). The alias's client (``cache_sessions.sentinel.SentinelSessionClient``)
gets its pools from ``SentinelConnectionFactory`` (django-redis's Sentinel
factory, with ``FollowingPool`` and ``NewestSentinel``): pools that a
process-wide ``follower.Follower`` moves to the new primary as soon as the
sentinels announce it. Discovery asks every sentinel and believes the newest
configuration (the highest config epoch), not the first to answer, which may
not have heard of the last failover yet (``NewestSentinel``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django_redis.pool import SentinelConnectionFactory as DjangoRedisSentinelFactory
from redis.exceptions import ConnectionError, RedisError, TimeoutError
from redis.sentinel import Sentinel, SentinelConnectionPool

from .. import errors
from . import async_sentinel, discovery, follower
from .base import Topology

T = TypeVar("T")

POOL = "cache_sessions.topology.sentinel.FollowingPool"


class SentinelTopology(Topology):
    """A Sentinel service: one primary, which a failover moves."""

    def is_retryable(self, exc: BaseException) -> bool:
        """What ``RETRY`` retries on one server, and READONLY: the primary just moved."""
        return errors.is_retryable(exc) or errors.is_readonly(exc)

    def after_failure(self, redis: Any, exc: BaseException) -> None:
        """Before a retry: a lost connection is dropped by redis-py itself; one to a demoted
        primary is not, so ask the sentinels where the primary is now (redis-py then closes
        the idle connections to the old one)."""
        if errors.is_readonly(exc):
            with contextlib.suppress(RedisError, OSError):  # if not now, the retry asks when it connects
                redis.connection_pool.get_master_address()

    def aredis(self, sync_redis: Any) -> Any:
        """The running loop's asyncio client of the primary (``async_sentinel``)."""
        return async_sentinel.client_for(sync_redis)

    async def aretried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``Topology.aretried``; before a retry, the loop's pool asks the sentinels where the
        primary is when it next connects (a lost connection, or READONLY: a demoted primary)."""
        pool = self.aredis(self.redis()).connection_pool

        async def forget(error: Exception) -> None:
            await pool.forget_primary()

        result: T = await self.aretry.call_with_retry(attempt, forget, self.is_retryable)
        return result


class NewestSentinel(Sentinel):
    """redis-py's ``Sentinel``, whose primary is the one the newest configuration names.

    Each sentinel is asked, in one pipeline it runs back to back, for the service's
    state (its config epoch and flags: ``SENTINEL MASTER``) and for the address that goes
    with that epoch (``SENTINEL GET-MASTER-ADDR-BY-NAME``). The address in ``SENTINEL
    MASTER(S)`` is not it: a sentinel leading a failover raises its epoch when the replica
    is promoted but keeps the old address there until it has reconfigured the other
    replicas (seconds), while ``GET-MASTER-ADDR-BY-NAME`` gives the promoted one from that
    moment. The highest epoch wins: before the promotion every sentinel names the old
    primary; after it, the leader and every sentinel that heard its announcement name the
    new one with the new epoch, and those that did not yet keep the old epoch and lose.
    Two answers with one epoch name one address (an epoch is one configuration); should
    they ever differ, the address most sentinels give wins, not the first to answer.
    """

    def discover_master(self, service_name: str) -> tuple[str, int]:
        answers: list[tuple[Any, discovery.Answer]] = []
        for sentinel in self.sentinels:
            try:
                pipe = discovery.queued(sentinel.pipeline(transaction=False), service_name)
                answers.append((sentinel, pipe.execute(raise_on_error=False)))
            except (ConnectionError, TimeoutError) as exc:
                answers.append((sentinel, exc))
        return discovery.primary(self, service_name, answers)


class SentinelConnectionFactory(DjangoRedisSentinelFactory):
    """django-redis's Sentinel connection factory, with ``FollowingPool`` and ``NewestSentinel``."""

    _sentinel: Any

    def __init__(self, options: dict[str, Any]) -> None:
        options.setdefault("CONNECTION_POOL_CLASS", POOL)
        super().__init__(options)
        stock = self._sentinel  # what get_connection_pool hands to the pools
        self._sentinel = NewestSentinel(  # type: ignore[no-untyped-call, unused-ignore]
            options["SENTINELS"], sentinel_kwargs=stock.sentinel_kwargs, **stock.connection_kwargs
        )


class FollowingPool(SentinelConnectionPool):
    """A Sentinel pool that the group's ``Follower`` pauses during a failover and switches
    to the new primary (only pools of the primary are followed; replica pools are redis-py's)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.resumed = threading.Event()
        self.resumed.set()
        self.paused_until = 0.0
        self.follower: follower.Follower | None = None
        if self.is_master:
            addresses = [_address(sentinel) for sentinel in sentinel_manager.sentinels]
            self.follower = follower.follower_for(addresses, sentinel_manager.sentinel_kwargs)
            self.follower.watch(self)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.follower is not None:
            self.follower.ensure_running()
            if not self.resumed.is_set():
                self._wait_for_failover()
        return super().get_connection(*args, **kwargs)

    def _wait_for_failover(self) -> None:
        remaining = self.paused_until - time.monotonic()
        if remaining > 0:
            self.resumed.wait(remaining)
        else:
            self.resumed.set()  # the announced failover did not come in time: carry on

    # Called by the follower's threads.

    def pause(self, seconds: float) -> None:
        self.paused_until = time.monotonic() + seconds
        self.resumed.clear()

    def switch(self, address: tuple[str, int]) -> bool:
        """Use the primary at ``address`` from now on; whether it is a new one."""
        forced = self.sentinel_manager._force_master_ip
        address = (forced, address[1]) if forced is not None else address
        moved = self.proxy.master_address != address
        if moved:
            self.proxy.master_address = address
            self.disconnect(inuse_connections=False)  # those in use are closed when released
        self.resume()
        return moved

    def resume(self) -> None:
        self.resumed.set()

    def rediscover(self) -> None:
        self.get_master_address()  # type: ignore[no-untyped-call]  # redis-py closes the idle connections if the primary moved


def _address(sentinel: Any) -> tuple[str, int]:
    kwargs = sentinel.connection_pool.connection_kwargs
    return str(kwargs.get("host")), int(kwargs.get("port") or 26379)
