"""What the engine learns about a Redis server, once per process.

Django builds a cache object, and so a django-redis client, per thread and
per asyncio task; facts about the server (its listpack limits, whether it
knows ``SET ... NX GET``) must not be re-read by each of them. They are kept
here, per server (address, unix socket or Sentinel service, and the user,
since ACLs decide what ``CONFIG GET`` may read), for the life of the process:
a later ``CONFIG SET`` is seen after a restart of the web process.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

DEFAULT_INLINE_LIMIT = 64  # Redis's own default hash-max-listpack-value


@dataclass
class ServerFacts:
    # (hash-max-listpack-entries, hash-max-listpack-value); None until read, (None, None) if CONFIG is refused.
    listpack_limits: tuple[int | None, int | None] | None = None
    # SET with both NX and GET (Redis 7.0+). Assumed until a server answers "syntax error".
    set_nx_get: bool = True
    # Held while a fact is read from the server, so that threads starting together ask once;
    # on asyncio, the read under way in each loop, which tasks starting together await.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    reading: weakref.WeakKeyDictionary[Any, Any] = field(default_factory=weakref.WeakKeyDictionary, repr=False)


_facts: dict[tuple[Any, ...], ServerFacts] = {}
_lock = threading.Lock()


def server_id(redis: Any) -> tuple[Any, ...]:
    """Which server (and user) a redis-py client talks to. A ``RedisCluster`` counts as
    one server (its startup nodes) for facts about the server software (``SET NX GET``);
    limits are read from each primary's own client (``Topology.servers()``)."""
    pool = getattr(redis, "connection_pool", None)
    if pool is None:
        nodes = tuple(sorted(node.name for node in redis.startup_nodes))
        return ("cluster", nodes, redis.nodes_manager.connection_kwargs.get("username"))
    kwargs = pool.connection_kwargs
    return (
        kwargs.get("host"),
        kwargs.get("port"),
        kwargs.get("path"),
        getattr(pool, "service_name", None),
        kwargs.get("username"),
    )


def of(redis: Any) -> ServerFacts:
    """The facts of the server behind ``redis`` (an empty record the first time)."""
    key = server_id(redis)
    facts = _facts.get(key)
    if facts is None:
        with _lock:
            facts = _facts.setdefault(key, ServerFacts())
    return facts


def listpack_limits(redis: Any) -> tuple[int | None, int | None]:
    """``(hash-max-listpack-entries, hash-max-listpack-value)``, read with one ``CONFIG GET``
    per server and process; ``(None, None)`` when CONFIG is disabled, renamed or forbidden."""
    facts = of(redis)
    limits = facts.listpack_limits
    if limits is None:
        with facts.lock:
            limits = facts.listpack_limits
            if limits is None:
                limits = facts.listpack_limits = read_listpack_limits(redis)
    return limits


async def alistpack_limits(redis: Any, async_redis: Any) -> tuple[int | None, int | None]:
    """``listpack_limits`` for the asyncio path: ``async_redis`` asks (once, however many
    tasks start together), the record of ``redis``'s server keeps the answer."""
    facts = of(redis)
    limits = facts.listpack_limits
    if limits is not None:
        return limits
    loop = asyncio.get_running_loop()
    reading = facts.reading.get(loop)
    if reading is None:
        reading = facts.reading[loop] = loop.create_task(_aread_listpack_limits(facts, async_redis))
    return await asyncio.shield(reading)  # a cancelled caller does not cancel the others' read


async def _aread_listpack_limits(facts: ServerFacts, async_redis: Any) -> tuple[int | None, int | None]:
    try:
        config = await async_redis.config_get("hash-max-*")
    except ResponseError:
        config = {}
    finally:
        facts.reading.pop(asyncio.get_running_loop(), None)
    limits = facts.listpack_limits = _limits(config)
    return limits


def read_listpack_limits(redis: Any) -> tuple[int | None, int | None]:
    """Ask the server (every time: for checks and benchmarks)."""
    try:
        config = redis.config_get("hash-max-*")
    except ResponseError:
        return None, None
    return _limits(config)


def _limits(config: dict[Any, Any]) -> tuple[int | None, int | None]:
    if not config:
        return None, None
    entries = config.get("hash-max-listpack-entries", config.get("hash-max-ziplist-entries"))
    value = config.get("hash-max-listpack-value", config.get("hash-max-ziplist-value"))
    return (int(entries) if entries is not None else None), (int(value) if value is not None else None)


def forget() -> None:
    """Drop everything learnt (tests that reconfigure a server)."""
    global generation
    with _lock:
        _facts.clear()
        generation += 1


generation = 0  # bumped by forget(): what callers that keep a derived fact compare with
