"""What the engine learns about a Redis server, once per process.

Django builds a cache object, and so a django-redis client, per thread and
per asyncio task; facts about the server (its listpack limits, which software
and version it is, whether it knows ``SET ... NX GET``) must not be re-read by
each of them. They are kept here, per server (address, unix socket or Sentinel
service, and the user, since ACLs decide what ``CONFIG GET`` and ``INFO`` may
read), for the life of the process: a later ``CONFIG SET`` or upgrade is seen
after a restart of the web process (a server that forgets a command it was
known for is caught by the call's fallback: ``Call.fallback``).

A record is found by a sync client (``of``) or by its key (``of_id``): the
asyncio path learns without sync clients (``Topology.afacts``), so a Redis
Cluster's primaries are keyed by address and user (``node_id``, the key of
their sync clients too) and the cluster as a whole by its startup nodes and user
(``cluster_id``), known from the settings without connecting.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from . import deadline

DEFAULT_INLINE_LIMIT = 64  # Redis's own default hash-max-listpack-value
F = TypeVar("F")


@dataclass(frozen=True)
class Software:
    """Which server software answers, and its version (from ``INFO server``)."""

    name: str  # "redis", "valkey", or "unknown" when INFO is refused (ACL, renamed command)
    version: tuple[int, ...] = ()

    @property
    def hsetex(self) -> bool:
        """Whether it has ``HSETEX ... FNX|FXX``: hash fields with TTLs written conditionally
        (Redis 8.0, Valkey 9.0)."""
        return (self.name == "redis" and self.version >= (8,)) or (self.name == "valkey" and self.version >= (9,))

    @property
    def compact_field_ttls(self) -> bool:
        """Whether a small hash whose fields carry TTLs keeps its compact encoding: Redis 8's
        ``listpackex`` (measured: +1 to +7 bytes a session). Valkey 9 converts it to a hashtable
        (+40%), and Redis 7 has no HSETEX."""
        return self.name == "redis" and self.version >= (8,)

    def field_ttls(self, forced: bool | None) -> bool:
        """Whether hash mode writes with field TTLs here, ``forced`` being ``FIELD_TTL``: None,
        where they keep buckets compact; True, wherever HSETEX may exist (a server INFO does not
        describe is tried: see ``ServerFacts.hsetex_refused``); False, never."""
        if forced is None:
            return self.compact_field_ttls
        return forced and (self.hsetex or not self.version)

    def __str__(self) -> str:
        if not self.version:
            return f"{self.name} (version unknown)"
        return {"redis": "Redis", "valkey": "Valkey"}.get(self.name, self.name) + " " + ".".join(map(str, self.version))


UNKNOWN = Software("unknown")


@dataclass
class ServerFacts:
    # (hash-max-listpack-entries, hash-max-listpack-value); None until read, (None, None) if CONFIG is refused.
    listpack_limits: tuple[int | None, int | None] | None = None
    # Which software and version; None until read, UNKNOWN if INFO is refused.
    software: Software | None = None
    # SET with both NX and GET (Redis 7.0+). Assumed until a server answers "syntax error".
    set_nx_get: bool = True
    # HSETEX, when the software said so; False once the server answered "unknown command"
    # (a failover to an older replica): hash mode writes with its script again.
    hsetex_refused: bool = False
    # Held while a fact is read from the server, so that threads starting together ask once;
    # on asyncio, the reads under way in each loop (by fact), which tasks starting together await.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    reading: weakref.WeakKeyDictionary[Any, dict[str, Any]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )


_facts: dict[tuple[Any, ...], ServerFacts] = {}
_lock = threading.Lock()


def server_id(redis: Any) -> tuple[Any, ...]:
    """Which server (and user) a redis-py client talks to. A ``RedisCluster`` counts as
    one server (its startup nodes) for facts about the server software (``SET NX GET``);
    limits are read from each primary's own client (``Topology.servers()``)."""
    pool = getattr(redis, "connection_pool", None)
    if pool is None:
        nodes = tuple(sorted(node.name for node in redis.startup_nodes))
        return cluster_id(nodes, redis.nodes_manager.connection_kwargs.get("username"))
    kwargs = pool.connection_kwargs
    return (
        kwargs.get("host"),
        kwargs.get("port"),
        kwargs.get("path"),
        getattr(pool, "service_name", None),
        kwargs.get("username"),
    )


def node_id(host: str, port: int, username: str | None) -> tuple[Any, ...]:
    """``server_id`` of the client of a server at ``host:port`` (a cluster node's, sync or asyncio)."""
    return (host, port, None, None, username)


def cluster_id(nodes: Iterable[str], username: str | None) -> tuple[Any, ...]:
    """What the facts of a whole cluster are kept under: its startup nodes (``host:port``) and user."""
    return ("cluster", tuple(sorted(nodes)), username)


def of(redis: Any) -> ServerFacts:
    """The facts of the server behind ``redis`` (an empty record the first time)."""
    return of_id(server_id(redis))


def of_id(key: tuple[Any, ...]) -> ServerFacts:
    """The facts kept under ``key`` (``server_id``, ``node_id``, ``cluster_id``): an empty record the first time."""
    facts = _facts.get(key)
    if facts is None:
        with _lock:
            facts = _facts.setdefault(key, ServerFacts())
    return facts


def listpack_limits(redis: Any) -> tuple[int | None, int | None]:
    """``(hash-max-listpack-entries, hash-max-listpack-value)``, read with one ``CONFIG GET``
    per server and process; ``(None, None)`` when CONFIG is disabled, renamed or forbidden."""
    return _learn(redis, "listpack_limits", read_listpack_limits)


async def alistpack_limits(facts: ServerFacts, async_redis: Any) -> tuple[int | None, int | None]:
    """``listpack_limits`` for the asyncio path: ``async_redis`` (anything with the
    coroutines ``config_get`` and ``info`` of ``redis.asyncio``) asks, once however many tasks
    start together, and the server's record ``facts`` keeps the answer."""
    return await _alearn(facts, "listpack_limits", _config_reader(async_redis))


def software(redis: Any) -> Software:
    """Which software and version the server is (one ``INFO server`` per server and process)."""
    return _learn(redis, "software", read_software)


async def asoftware(facts: ServerFacts, async_redis: Any) -> Software:
    """``software`` for the asyncio path (see ``alistpack_limits``)."""

    async def read() -> Software:
        try:
            return _software(await async_redis.info("server"))
        except ResponseError:
            return UNKNOWN

    return await _alearn(facts, "software", read)


def field_ttls(redis: Any, forced: bool | None) -> bool:
    """Whether hash mode writes with field TTLs on this server: ``forced`` is ``FIELD_TTL``
    (True: wherever HSETEX exists; False: never; None: where they keep buckets compact)."""
    if forced is False:
        return False
    facts = of(redis)
    if facts.hsetex_refused:
        return False
    return (facts.software or software(redis)).field_ttls(forced)


def known_field_ttls(facts: ServerFacts, forced: bool | None) -> bool | None:
    """``field_ttls`` from a record alone: None while its software is not known."""
    if forced is False or facts.hsetex_refused:
        return False
    return None if facts.software is None else facts.software.field_ttls(forced)


def _learn(redis: Any, name: str, read: Callable[[Any], F]) -> F:
    facts = of(redis)
    value: F | None = getattr(facts, name)
    if value is None:
        # Another thread may be reading (perhaps with no deadline): wait for it within ours.
        left = deadline.remaining()
        if not facts.lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
            raise deadline.TimeIsUp("the session operation's time was up while another thread asked the server")
        try:
            value = getattr(facts, name)
            if value is None:
                value = read(redis)
                setattr(facts, name, value)
        finally:
            facts.lock.release()
    return value


async def _alearn(facts: ServerFacts, name: str, read: Callable[[], Awaitable[F]]) -> F:
    value: F | None = getattr(facts, name)
    if value is not None:
        return value
    loop = asyncio.get_running_loop()
    under_way = facts.reading.setdefault(loop, {})
    reading = under_way.get(name)
    if reading is None:
        # The read is shared: it runs outside every caller's deadline (in a context of its own,
        # bounded by the socket timeouts), and each caller waits for it within its own.
        read_task = loop.create_task(_aread(facts, name, read, under_way), context=contextvars.Context())
        reading = under_way[name] = read_task
    result: F = await deadline.abounded(asyncio.shield(reading))  # a caller giving up leaves the read to the others
    return result


async def _aread(facts: ServerFacts, name: str, read: Callable[[], Awaitable[F]], under_way: dict[str, Any]) -> F:
    try:
        value = await read()
    finally:
        under_way.pop(name, None)
    setattr(facts, name, value)
    return value


def _config_reader(async_redis: Any) -> Callable[[], Awaitable[tuple[int | None, int | None]]]:
    async def read() -> tuple[int | None, int | None]:
        try:
            return _limits(await async_redis.config_get("hash-max-*"))
        except ResponseError:
            return None, None

    return read


def read_listpack_limits(redis: Any) -> tuple[int | None, int | None]:
    """Ask the server (every time: for checks and benchmarks)."""
    try:
        config = redis.config_get("hash-max-*")
    except ResponseError:
        return None, None
    return _limits(config)


def read_software(redis: Any) -> Software:
    """Ask the server which software it is (every time: for checks and ``cleanuprs --stats``)."""
    try:
        return _software(redis.info("server"))
    except ResponseError:
        return UNKNOWN


def _software(info: dict[str, Any]) -> Software:
    """Valkey names itself (``server_name``, ``valkey_version``) and also reports a
    ``redis_version`` for old clients (7.2.4): its own comes first."""
    if "valkey_version" in info or str(info.get("server_name", "")).lower() == "valkey":
        name, version = "valkey", info.get("valkey_version", info.get("redis_version"))
    elif "redis_version" in info:
        name, version = "redis", info["redis_version"]
    else:
        return UNKNOWN
    try:
        return Software(name, tuple(int(part) for part in str(version).split(".")[:3]))
    except ValueError:
        return Software(name)


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
