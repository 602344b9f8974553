"""``MIN_REPLICAS_ACK``: a write counts as done only once replicas have it too.

Redis replicates asynchronously: a primary answers a write before any
replica has it, so a write acknowledged just before the primary dies, or
just after a failover promoted a replica behind its back, is lost. With
``MIN_REPLICAS_ACK = n`` every session write is followed by ``WAIT n <ms>``
in the same round trip (a pipeline: one socket write, one read); if fewer
than ``n`` replicas confirm it within ``MIN_REPLICAS_ACK_TIMEOUT`` the
operation raises ``SessionStoreUnavailable`` (the write is on the primary,
but it may not survive a failover), and a warning is logged. It is not
retried: a missing replica does not come back within a backoff.

WAIT is not allowed inside a Lua script, hence the pipeline around the
EVALSHA (reloaded on NOSCRIPT, like any script call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from ..errors import TooFewReplicas

if TYPE_CHECKING:
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

    from .calls import Call

logger = logging.getLogger("cache_sessions")


@dataclass(frozen=True)
class Acks:
    """How many replicas must acknowledge a write, and how long to wait for them."""

    replicas: int
    timeout_ms: int

    def send(self, redis: Redis, call: Call[Any]) -> Any:
        """``call`` then ``WAIT``, in one round trip; the call's reply."""
        reply, acked = self._pipeline(redis, call).execute(raise_on_error=False)
        if isinstance(reply, NoScriptError) and call.script is not None:
            redis.script_load(call.script.source)
            reply, acked = self._pipeline(redis, call).execute(raise_on_error=False)
        return self.judge(reply, acked)

    async def asend(self, redis: AsyncRedis, call: Call[Any]) -> Any:
        """``send`` on ``redis.asyncio``."""
        reply, acked = await self._pipeline(redis, call).execute(raise_on_error=False)
        if isinstance(reply, NoScriptError) and call.script is not None:
            await redis.script_load(call.script.source)
            reply, acked = await self._pipeline(redis, call).execute(raise_on_error=False)
        return self.judge(reply, acked)

    def _pipeline(self, redis: Any, call: Call[Any]) -> Any:
        assert call.args is not None
        pipe = redis.pipeline(transaction=False)
        pipe.execute_command(*call.args, **call.options)
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        return pipe

    def judge(self, reply: Any, acked: Any) -> Any:
        """The write's reply, once ``acked`` (WAIT's reply) says enough replicas have it."""
        if isinstance(reply, Exception):
            raise reply
        self.check(acked)
        return reply

    def check(self, acked: Any) -> None:
        """Raise ``TooFewReplicas`` (and log) when WAIT's reply is below ``replicas``."""
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self.replicas:
            logger.warning(
                "A session write reached %d of the %d replicas MIN_REPLICAS_ACK asks for within %d ms.",
                acked,
                self.replicas,
                self.timeout_ms,
            )
            raise TooFewReplicas(int(acked), self.replicas, self.timeout_ms)
