"""What the engine takes for granted in redis-py (and msgspec), each checked on its own.

The engine builds on behaviours of redis-py that are not all public API: the
``is_retryable`` argument of ``Retry.call_with_retry``, the attributes of a
``Retry`` it copies into an asyncio twin, the settings a ``Sentinel`` keeps,
how a Sentinel pool finds and leaves its primary, how a cluster client reports
a dead node, which errors are which. CI runs the suite on the newest releases
and on the declared minimums (``.ci/minimums.txt``), so when a release changes
one of these, the test named after it fails in the leg that installed it,
instead of an engine test failing far from the cause (``'Retry' object has no
attribute 'get_retries'``, an ``AttributeError`` out of a cluster client). Each
test names the engine code that relies on it, and the redis-py release where the
behaviour appeared or changed: a failure here means adapting that code (or the
declared minimum), then the test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import time
from typing import Any

import msgspec
import pytest
from redis import ConnectionPool, Redis
from redis import exceptions as redis_errors
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import AbstractBackoff, EqualJitterBackoff, NoBackoff
from redis.cluster import REDIS_ALLOWED_KEYS, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from cache_sessions import errors
from cache_sessions.storage import sending
from cache_sessions.testing import RedisServer, free_port
from cache_sessions.topology import async_clients as aio
from tests.support import sentinels
from tests.support.clusters import Cluster, contract_cluster
from tests.support.servers import standalone


class Recording(AbstractBackoff):
    """A backoff that waits for nothing and remembers the failure counts it was given."""

    def __init__(self) -> None:
        self.failures: list[int] = []

    def compute(self, failures: int) -> float:
        self.failures.append(failures)
        return 0


class Failing:
    """A callable that raises the given errors in turn, then returns "done"; counts its calls."""

    def __init__(self, *raised: Exception) -> None:
        self.raised, self.count = raised, 0

    def __call__(self) -> str:
        self.count += 1
        if self.count <= len(self.raised):
            raise self.raised[self.count - 1]
        return "done"


# Retry (errors.py, executor.py, sending.py, aio.py) ------------------------------------------------


def test_call_with_retry_asks_is_retryable_and_passes_failure_counts_to_the_backoff():
    """``Executor.execute`` retries through ``call_with_retry(do, fail, is_retryable)`` (redis-py 7.0+)."""
    backoff, failed = Recording(), []
    retry = Retry(backoff, 2)
    lost = redis_errors.ConnectionError("lost")
    do = Failing(lost, lost)
    assert retry.call_with_retry(do, failed.append, lambda exc: True) == "done"
    assert (do.count, failed, backoff.failures) == (3, [lost, lost], [1, 2])

    refused = Failing(redis_errors.ConnectionError("no retry for this one"))
    with pytest.raises(redis_errors.ConnectionError, match="no retry"):
        retry.call_with_retry(refused, failed.append, lambda exc: False)
    assert refused.count == 1


def test_the_asyncio_retry_asks_is_retryable_too():
    """``aio.send`` retries through the asyncio ``call_with_retry(do, fail, is_retryable)`` (redis-py 7.3+)."""
    lost = redis_errors.ConnectionError("lost")
    do = Failing(lost, lost)

    async def attempt() -> Any:
        return do()

    async def ignore(exc: Exception) -> None:
        pass

    retry = AsyncRetry(NoBackoff(), 2)
    assert asyncio.run(retry.call_with_retry(attempt, ignore, lambda exc: True)) == "done"
    do = Failing(lost)
    with pytest.raises(redis_errors.ConnectionError):
        asyncio.run(retry.call_with_retry(attempt, ignore, lambda exc: False))
    assert do.count == 1


def test_the_asyncio_twin_of_a_retry_keeps_all_its_state():
    """``aio.async_retry`` copies a sync ``Retry``: every attribute redis-py keeps on one must be
    copied (the backoff, the count, the errors; redis-py 8.2 added a checker of its own)."""
    accepts = inspect.signature(Retry).parameters
    extra = {"is_retryable": errors.is_retryable} if "is_retryable" in accepts else {}
    retry = Retry(EqualJitterBackoff(cap=0.5, base=0.05), 4, (redis_errors.ConnectionError,), **extra)
    assert retry.get_retries() == 4  # read by aio.async_retry (redis-py 6.0+)
    assert vars(aio.async_retry(retry)) == vars(retry)


def test_a_retry_retries_connection_errors_and_timeouts_by_default_and_nothing_else():
    """``errors.retry_policy`` builds ``Retry(backoff, n)``: READONLY, OOM, NOPERM are not retried
    because a default ``Retry`` never retries a ``ResponseError``, whatever ``is_retryable`` says."""
    retry = Retry(NoBackoff(), 1)
    for transient in (redis_errors.ConnectionError(), redis_errors.TimeoutError(), TimeoutError()):
        assert retry.call_with_retry(Failing(transient), lambda exc: None) == "done"
    readonly = Failing(redis_errors.ReadOnlyError("READONLY"))
    with pytest.raises(redis_errors.ReadOnlyError):
        retry.call_with_retry(readonly, lambda exc: None, lambda exc: True)
    assert readonly.count == 1


def test_equal_jitter_backoff_waits_as_the_default_retry_says():
    """``errors.DEFAULT_BACKOFF``: waits of 50-100 ms, then 100-200 ms (README, When Redis fails)."""
    for _ in range(50):
        assert 0.05 <= errors.DEFAULT_BACKOFF.compute(1) <= 0.1
        assert 0.1 <= errors.DEFAULT_BACKOFF.compute(2) <= 0.2


def test_pools_made_from_urls_do_not_retry():
    """README: the alias's ordinary cache calls do not retry unless ``CONNECTION_POOL_KWARGS``
    says so; the session operations' ``RETRY`` is then the only retry (no retries multiplied)."""
    pool = ConnectionPool.from_url(f"{standalone().url}/0?socket_timeout=1")
    assert pool.make_connection().retry.get_retries() == 0


# Errors (errors.py) ----------------------------------------------------------------------

# (error, what errors.py takes it for): a re-parented error changes what is retried or reported.
HIERARCHY = [
    (redis_errors.BusyLoadingError, redis_errors.ConnectionError),  # LOADING: retried like a lost connection
    (redis_errors.ReadOnlyError, redis_errors.ResponseError),  # not retried (a ResponseError)...
    (redis_errors.OutOfMemoryError, redis_errors.ResponseError),  # ...but reported as unavailable
    (redis_errors.NoScriptError, redis_errors.ResponseError),  # caught to load the script again
    (redis_errors.ClusterDownError, redis_errors.ClusterError),  # unavailable, as every ClusterError
    (redis_errors.SlotNotCoveredError, redis_errors.RedisClusterException),  # not a RedisError: listed apart
]


@pytest.mark.parametrize(("error", "base"), HIERARCHY, ids=[error.__name__ for error, _ in HIERARCHY])
def test_each_error_is_of_the_kind_errors_py_takes_it_for(error, base):
    assert issubclass(error, base)
    assert issubclass(error, errors.REDIS_ERRORS)  # translated, never raised raw


# Commands and replies (strings.py, replicas.py, sweep.py, aio.py) --------------------------


@pytest.fixture
def plain() -> Any:
    """A client of the standalone server (DB 0); the keys a test makes start with ``upstream:``."""
    client = Redis.from_url(f"{standalone().url}/0")
    yield client
    names = list(client.scan_iter(match="upstream:*"))
    if names:
        client.delete(*names)
    client.close()


def test_set_with_the_get_option_returns_the_old_value(plain):
    """``StringSessions`` creates with ``SET ... NX GET`` and ``options={"get": True}``: the reply is
    the old value (or None), not the True/None that a plain SET gives."""
    plain.set("upstream:set", b"old")
    assert plain.execute_command("SET", "upstream:set", b"new", "GET", get=True) == b"old"


def test_a_pipeline_hands_back_errors_in_place(plain):
    """``replicas.Acks`` sends a write and its WAIT in one pipeline and reads both replies,
    a NOSCRIPT included (then loads the script and sends both again)."""
    pipe = plain.pipeline(transaction=False)
    pipe.execute_command("EVALSHA", "0" * 40, 1, "upstream:script")
    pipe.execute_command("WAIT", 0, 10)
    missing, acked = pipe.execute(raise_on_error=False)
    assert isinstance(missing, redis_errors.NoScriptError)
    assert acked == 0


def test_one_round_trip_on_a_pool_connection_reads_every_reply_through_the_callbacks(plain):
    """``sending._round_trip`` sends a call of several commands as redis-py's pipeline does,
    without a Pipeline: ``pool.get_connection()`` without arguments (7.4 deprecated them),
    ``pack_commands`` + ``send_packed_command``, ``client.parse_response`` per reply (the client's
    response callbacks: EXPIRE's bool), an error reply raised only once read (the replies after it
    are still there to read: the connection stays in step), ``retry.call_with_retry(do, fail)``
    calling ``fail`` with the error alone, and ``pool.release``."""
    plain.set("upstream:string", b"v")
    pool = plain.connection_pool
    connection = pool.get_connection()
    try:
        commands = [
            ("HSET", "upstream:string", "f", "v"),
            ("EXPIRE", "upstream:string", 60),
            ("GET", "upstream:string"),
        ]
        connection.send_packed_command(connection.pack_commands(commands))
        with pytest.raises(redis_errors.ResponseError, match="WRONGTYPE"):
            plain.parse_response(connection, "HSET")
        assert plain.parse_response(connection, "EXPIRE") is True
        assert plain.parse_response(connection, "GET") == b"v"
        connection.send_packed_command(connection.pack_commands([("PING",)]))
        assert plain.parse_response(connection, "PING") is True  # nothing left over in between
        failed: list[Exception] = []
        lost = redis_errors.ConnectionError("lost")
        with pytest.raises(redis_errors.ConnectionError):  # (a pool made from a URL makes one attempt)
            connection.retry.call_with_retry(Failing(*[lost] * 10), failed.append)
        assert failed and all(error is lost for error in failed)
    finally:
        pool.release(connection)
    assert pool.get_connection() is connection  # released: the next caller gets it back


@pytest.mark.skipif(importlib.util.find_spec("hiredis") is None, reason="hiredis is not installed")
def test_hiredis_packs_commands_as_redis_py_does(plain):
    """``sending._packed`` packs a call's commands with ``hiredis.pack_command`` (a tuple of str,
    bytes, int, float): the bytes redis-py's packers (hiredis or Python) send for the same
    arguments, text as UTF-8, numbers as ``repr``, empty and large values included."""
    import hiredis
    from redis.asyncio.connection import Connection as AsyncConnection
    from redis.connection import PythonRespSerializer

    commands = [
        ("HSETEX", b"p:h{00af}", "FXX", "EX", 1_209_600, "FIELDS", 1, b"k" * 32, b"\x00\xff" * 40),
        ("EXPIRE", b"p:h{00af}", 1_209_600, "GT"),
        ("SET", b"p:o", b"", "EX", 0.5, "PX", -1, "\u00e9t\u00e9"),
        ("SET", b"p:big", b"v" * 100_000),
        ("SET", b"p:\r\n", b"\r\n*1\r\n$4\r\nPING\r\n"),  # protocol inside a value: length-prefixed, inert
        ("WAIT", 1, 50),
    ]
    pool = plain.connection_pool
    connection = pool.get_connection()  # the pool's packer: hiredis's where installed
    try:
        python = PythonRespSerializer(6000, connection.encoder.encode)  # redis-py's own, without hiredis
        for command in commands:
            packed = hiredis.pack_command(command)
            assert packed == b"".join(connection.pack_command(*command)), command
            assert packed == b"".join(python.pack(*command)), command
            assert packed == b"".join(AsyncConnection().pack_command(*command)), command
        together = b"".join(connection.pack_commands(commands))
    finally:
        pool.release(connection)
    assert b"".join(hiredis.pack_command(command) for command in commands) == together
    odd = (("SET", b"k", bytearray(b"v")),)
    with pytest.raises(TypeError):  # what sending._packed leaves to redis-py's packer
        hiredis.pack_command(odd[0])

    def outcome(pack: Any) -> Any:
        try:
            return pack(connection, odd)
        except redis_errors.DataError as exc:  # (redis-py 7.4's hiredis packer refuses a bytearray too)
            return type(exc)

    assert outcome(sending._packed) == outcome(lambda connection, odd: connection.pack_commands(odd))
    assert sending._packed(connection, tuple(commands)) == [together]


async def test_one_round_trip_on_an_asyncio_pool_connection_reads_every_reply(plain):
    """``sending._around_trip``: the same on ``redis.asyncio`` (``await pool.get_connection()``,
    ``await client.parse_response``, ``await retry.call_with_retry(do, fail)`` awaiting
    ``fail(error)``, ``disconnect(nowait=True)`` after a read cut short)."""
    plain.set("upstream:string", b"v")
    kwargs = plain.connection_pool.connection_kwargs
    client = AsyncRedis.from_url(f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}")  # one attempt
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        commands = [
            ("HSET", "upstream:string", "f", "v"),
            ("EXPIRE", "upstream:string", 60),
            ("GET", "upstream:string"),
        ]
        await connection.send_packed_command(connection.pack_commands(commands))
        with pytest.raises(redis_errors.ResponseError, match="WRONGTYPE"):
            await client.parse_response(connection, "HSET")
        assert await client.parse_response(connection, "EXPIRE") is True
        assert await client.parse_response(connection, "GET") == b"v"
        failed: list[Exception] = []

        lost = redis_errors.ConnectionError("lost")

        async def attempt() -> str:
            raise lost

        async def fail(error: Exception) -> None:
            failed.append(error)

        with pytest.raises(redis_errors.ConnectionError):
            await connection.retry.call_with_retry(attempt, fail)
        assert failed and all(error is lost for error in failed)
        await connection.disconnect(nowait=True)
        assert not connection.is_connected
    finally:
        await pool.release(connection)
        await client.aclose(close_connection_pool=True)


def test_cluster_clients_are_not_clients_of_one_server():
    """``sending.send``/``asend`` take a call of several commands without a Pipeline only on
    ``Redis`` (one server's client): a cluster client, which must route by slot, is none."""
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    assert not issubclass(RedisCluster, Redis)
    assert not issubclass(AsyncRedisCluster, AsyncRedis)


def test_scan_iter_filters_by_type(plain):
    """Sweeps and migration walk names with ``scan_iter(match=..., count=..., _type=...)``."""
    plain.hset("upstream:hash", "f", "v")
    plain.set("upstream:string", "v")
    assert list(plain.scan_iter(match="upstream:*", count=1000, _type="hash")) == [b"upstream:hash"]


URLS = [
    ("redis://u:p@127.0.0.1:6379/3?socket_timeout=1&socket_connect_timeout=2&health_check_interval=5", {}),
    ("unix:///run/redis.sock?db=1&socket_timeout=1&password=p", {}),
    ("rediss://127.0.0.1:6380/0?ssl_cert_reqs=none", {"ssl_ca_certs": "ca.pem", "ssl_certfile": "c.pem"}),
]


@pytest.mark.parametrize(("url", "pool_kwargs"), URLS, ids=["tcp", "unix", "tls"])
def test_every_setting_of_a_pool_reaches_its_asyncio_twin(url, pool_kwargs):
    """``aio.mirror`` copies the settings an asyncio connection accepts: a setting redis-py's
    asyncio connections stop accepting would otherwise be dropped without a word."""
    pool = ConnectionPool.from_url(url, **pool_kwargs)
    copied = aio.mirror(pool).connection_kwargs
    assert sorted(set(pool.connection_kwargs) - set(copied) - aio._NOT_COPIED) == []
    assert "close_connection_pool" in inspect.signature(AsyncRedis.aclose).parameters  # aio._close_all


# Sentinel (sentinel.py, follower.py) -----------------------------------------------------

PLAIN = (type(None), bool, int, float, str, bytes)


def test_a_sentinel_keeps_the_settings_another_is_built_from():
    """``SentinelConnectionFactory`` makes a ``NewestSentinel`` from django-redis's ``Sentinel``:
    its sentinels, ``sentinel_kwargs`` and ``connection_kwargs``; ``FollowingPool`` reads each
    sentinel's address from its pool, and ``_force_master_ip``."""
    addresses = [("127.0.0.1", 26379), ("127.0.0.2", 26380)]
    stock = Sentinel(addresses, socket_timeout=0.5, password="secret")
    assert stock.connection_kwargs == {"socket_timeout": 0.5, "password": "secret"}
    assert stock.sentinel_kwargs["socket_timeout"] == 0.5  # the socket_* settings, when not given
    assert "password" not in stock.sentinel_kwargs
    again = Sentinel(addresses, sentinel_kwargs=stock.sentinel_kwargs, **stock.connection_kwargs)
    assert (again.sentinel_kwargs, again.connection_kwargs) == (stock.sentinel_kwargs, stock.connection_kwargs)
    found = [sentinel.connection_pool.connection_kwargs for sentinel in again.sentinels]
    assert [(kwargs["host"], kwargs["port"]) for kwargs in found] == addresses
    assert again._force_master_ip is None
    assert Sentinel(addresses, force_master_ip="10.0.0.9")._force_master_ip == "10.0.0.9"


def test_sentinel_kwargs_hold_plain_settings_and_at_most_a_retry():
    """``follower.follower_for`` tells Sentinel groups apart by their addresses and the plain
    settings of ``sentinel_kwargs``, and a ``Follower`` connects with ``Redis(host, port,
    **sentinel_kwargs)``. What redis-py puts there itself is plain data and, since 8.2, a
    ``retry`` (a new ``Retry`` per ``Sentinel``, which broke grouping by ``repr``): another
    object there needs a look (does it tell groups apart?)."""
    group = sentinels.group()
    for given in (None, {"socket_timeout": 2.0}, {"password": None, "socket_keepalive": True}):
        kwargs = Sentinel(group.addresses, sentinel_kwargs=given, socket_timeout=1.0).sentinel_kwargs
        odd = {key: value for key, value in kwargs.items() if not isinstance(value, PLAIN)}
        assert set(odd) <= {"retry"} and all(isinstance(value, Retry) for value in odd.values()), odd
        host, port = group.addresses[0]
        with Redis(host, port, **kwargs) as sentinel:
            assert sentinel.ping()


def test_the_sentinels_describe_a_primary_as_newest_sentinel_reads_it():
    """``NewestSentinel.discover_master`` asks each sentinel for the service's state (a dict
    with its ``config-epoch``, which ``check_master_state`` accepts) and for its primary's
    address, with ``SENTINEL MASTERS`` or in a pipeline (``SENTINEL MASTER`` and
    ``GET-MASTER-ADDR-BY-NAME``)."""
    manager = Sentinel(sentinels.group().addresses, socket_timeout=2)
    sentinel = manager.sentinels[0]
    listed = sentinel.sentinel_masters()[sentinels.SERVICE]
    assert {"ip", "port", "config-epoch"} <= set(listed)
    pipe = sentinel.pipeline(transaction=False)
    pipe.sentinel_master(sentinels.SERVICE)
    pipe.sentinel_get_master_addr_by_name(sentinels.SERVICE)
    state, (host, port) = pipe.execute(raise_on_error=False)
    assert int(state["config-epoch"]) >= 0 and manager.check_master_state(state, sentinels.SERVICE)
    assert (host.decode() if isinstance(host, bytes) else host, int(port)) == (listed["ip"], listed["port"])
    sentinel.close()


class Pointing(Sentinel):
    """A ``Sentinel`` whose primary is the server it is told (the way ``NewestSentinel`` overrides
    ``discover_master``), counting how often the pool asks."""

    def __init__(self, port: int) -> None:
        super().__init__([])
        self.port, self.asked = port, 0

    def discover_master(self, service_name: str) -> tuple[str, int]:
        self.asked += 1
        return ("127.0.0.1", self.port)


def test_a_sentinel_pool_asks_discover_master_and_drops_connections_to_an_old_primary():
    """``FollowingPool.switch`` sets ``proxy.master_address`` and relies on redis-py closing a
    connection to the old primary when it comes back to the pool (never under its command);
    ``rediscover`` relies on ``get_master_address`` closing the idle ones."""
    manager = Pointing(standalone().port)
    pool = SentinelConnectionPool("upstream", manager)
    assert (pool.is_master, pool.service_name, pool.sentinel_manager) == (True, "upstream", manager)
    in_use = pool.get_connection()
    in_use.send_command("PING")
    assert in_use.read_response() in (b"PONG", "PONG") and manager.asked >= 1
    assert pool.master_address == pool.proxy.master_address == ("127.0.0.1", standalone().port)
    pool.proxy.master_address = ("127.0.0.1", free_port())  # what FollowingPool.switch does
    assert in_use._sock is not None
    pool.release(in_use)
    assert in_use._sock is None  # closed on its way back, not before
    idle = pool.get_connection()
    pool.release(idle)
    manager.port = free_port()
    pool.get_master_address()
    assert idle._sock is None
    pool.disconnect()


def test_a_primary_pool_turns_readonly_into_a_lost_connection():
    """A write to a demoted primary is retried on a Sentinel service (README): ``RETRY`` retries
    connection errors only, and redis-py reports READONLY on a primary's pool as one."""
    with RedisServer() as server:
        Redis(port=server.port).replicaof("127.0.0.1", free_port())  # a replica: writes refused
        client = Redis(connection_pool=SentinelConnectionPool("upstream", Pointing(server.port)))
        with pytest.raises(redis_errors.ConnectionError) as raised:
            client.set("upstream:demoted", "v")
        assert errors.is_retryable(raised.value)
        client.close()


async def test_an_asyncio_sentinel_connection_connects_to_the_pools_master_address():
    """``async_sentinel.PrimaryPool`` decides the primary in ``get_master_address``, which
    redis-py's asyncio Sentinel connection asks as it connects, and turns a READONLY reply on a
    primary's pool into a ``ConnectionError`` (retried, then the pool asks the sentinels)."""
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool

    class Pool(AsyncSentinelPool):
        asked = 0

        async def get_master_address(self) -> tuple[str, int]:
            Pool.asked += 1
            return ("127.0.0.1", self.port)

    with RedisServer() as server:
        pool = Pool("upstream", None)
        pool.port = server.port
        client = AsyncRedis(connection_pool=pool)
        assert await client.ping() and Pool.asked == 1
        Redis(port=server.port).replicaof("127.0.0.1", free_port())  # demoted: writes refused
        with pytest.raises(redis_errors.ConnectionError) as raised:
            await client.set("upstream:demoted", "v")
        assert errors.is_retryable(raised.value)
        await client.aclose(close_connection_pool=True)


async def test_an_asyncio_cluster_client_without_retries_makes_one_attempt_and_takes_a_node_target():
    """``async_cluster.make`` turns redis-py's retries off (``Retry(NoBackoff(), 0)``: the engine's
    deadline retries) and ``AsyncClusterRedis.script_load`` sends to each node with ``target_nodes``."""
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    cluster = contract_cluster()
    client = AsyncRedisCluster.from_url(cluster.urls[0], retry=AsyncRetry(NoBackoff(), 0))
    try:
        assert client.retry.get_retries() == 0
        nodes = client.get_nodes() or (await client.initialize()).get_nodes()
        for node in nodes:
            assert await client.execute_command("PING", target_nodes=node) in (True, b"PONG", "PONG")
        assert {node.connection_class for node in nodes} and all(hasattr(node, "connection_kwargs") for node in nodes)
    finally:
        await client.aclose()


# Redis Cluster (cluster.py, facts.py) ----------------------------------------------------


def test_a_cluster_client_routes_by_its_command_flags_and_merges_the_replies():
    """``ClusterRedis`` sends KEYS and DBSIZE to every primary through ``COMMAND_FLAGS`` and
    ``PRIMARIES``; redis-py merges the replies."""
    every = type("Every", (RedisCluster,), {"COMMAND_FLAGS": {**RedisCluster.COMMAND_FLAGS, "DBSIZE": "primaries"}})
    assert RedisCluster.PRIMARIES == "primaries"
    cluster = contract_cluster()
    client = every(url=cluster.urls[0])
    try:
        admins = [cluster.admin(server) for server in cluster.primaries]
        assert client.dbsize() == sum(admin.dbsize() for admin in admins)
    finally:
        client.close()


def test_a_cluster_client_keeps_what_the_engine_reads_and_retries_alone():
    """``ClusterConnectionFactory`` passes the settings ``REDIS_ALLOWED_KEYS`` lists, ``facts``
    and the sweeps read a cluster client's nodes, and a stall on a dead node is bounded by the
    cluster's own ``retry`` (then the engine's ``RETRY``): node connections never retry."""
    assert {"socket_timeout", "socket_connect_timeout", "username", "password", "ssl"} <= set(REDIS_ALLOWED_KEYS)
    policy = Retry(NoBackoff(), 2)
    url = contract_cluster().urls[0]
    client = RedisCluster(url=url, socket_timeout=3, username="default", password="any", retry=policy)
    try:
        assert client.retry is policy
        assert [node.name for node in client.startup_nodes] == [url.split("//")[1]]
        assert client.nodes_manager.connection_kwargs["username"] == "default"
        node = client.get_node_from_key(b"upstream:key")
        assert node.name in {primary.name for primary in client.get_primaries()}
        pool = client.get_redis_connection(node).connection_pool
        assert pool.connection_kwargs["socket_timeout"] == 3
        assert pool.make_connection().retry.get_retries() == 0
    finally:
        client.close()


def test_a_cluster_client_reports_a_dead_node_as_a_connection_error():
    """The engine reports a dead node as ``SessionStoreUnavailable`` (a 503), which needs a
    redis-py error; redis-py 7.3 raised ``AttributeError`` (a 500) when no connection could be made."""
    with Cluster(primaries=2) as cluster:
        victim = cluster.primaries[1]
        client = RedisCluster(url=cluster.urls[0], socket_connect_timeout=1, retry=Retry(NoBackoff(), 1))
        names = (f"upstream:{n}" for n in range(1000))
        name = next(name for name in names if client.get_node_from_key(name).port == victim.port)
        client.set(name, "v")
        victim.stop()
        started = time.monotonic()
        with pytest.raises(errors.REDIS_ERRORS) as raised:
            client.set(name, "w")
        assert errors.is_transient(raised.value) and time.monotonic() - started < 10
        client.close()


# msgspec (codec.py, compact.py) ----------------------------------------------------------


def test_msgspec_hands_an_ext_hook_the_ext_data_alone():
    """``compact.ext_hook`` checks the length of what it is given: msgspec 0.19 gave the rest
    of the buffer's length, and every format-2 session failed to load."""
    seen = []
    decoder = msgspec.msgpack.Decoder(ext_hook=lambda code, data: seen.append((code, len(data), bytes(data))))
    decoder.decode(msgspec.msgpack.encode({"a": msgspec.msgpack.Ext(1, b"\x07"), "b": "x" * 40}))
    assert seen == [(1, 1, b"\x07")]
