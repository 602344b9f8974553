"""Weighted partitioning: the hashing itself (pure, over 100,000 keys), then sessions and
cache keys on three real servers, a server added under live sessions (measured), reports
per server, and the checks of LOCATION and WEIGHTS.

The session contract runs on the partitioned configurations of ``tests/support/configs.py``."""

from __future__ import annotations

import functools
import math
from collections import Counter
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from redis import Redis

import cache_sessions
from cache_sessions.backend import SessionStore
from cache_sessions.partitioned import CrossServerKeys, PartitionedClient
from cache_sessions.testing import RedisServer
from cache_sessions.topology import hrw
from cache_sessions.topology import weights as partition
from tests.support import partitions
from tests.support.configs import CONFIGS, HASH, STRING, _config
from tests.support.redis_stats import sent_by_clients
from tests.support.servers import RECOMMENDED, unix_socket

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
N = 100_000
KEYS = [b"%032x" % (n * 2654435761 % 2**128) for n in range(N)]  # spread, like session keys
SERVERS = [f"10.0.0.{n}:6379/1" for n in range(1, 5)]


@functools.cache
def placed(*servers: tuple[str, float]) -> tuple[int, ...]:
    """Which server (an index) holds each of KEYS, for these servers and weights."""
    nodes = [hrw.Node(identity, weight) for identity, weight in servers]
    return tuple(hrw.choose(nodes, key) for key in KEYS)


@pytest.mark.parametrize("weights", [(1, 2, 1), (1, 1, 1), (5, 3, 1, 1)], ids=str)
def test_shares_are_within_two_points_of_the_weights(weights):
    servers = tuple(zip(SERVERS, weights, strict=False))
    counts = Counter(placed(*servers))
    total = sum(weights)
    for index, weight in enumerate(weights):
        assert abs(counts[index] / N - weight / total) < 0.02, (index, counts)


def moved(before: tuple[int, ...], after: tuple[int, ...]) -> list[int]:
    return [n for n in range(N) if before[n] != after[n]]


def test_adding_a_server_moves_its_fair_share_and_no_more():
    old = ((SERVERS[0], 1), (SERVERS[1], 2), (SERVERS[2], 1))
    new = (*old, (SERVERS[3], 1))
    before, after = placed(*old), placed(*new)
    changed = moved(before, after)
    assert all(after[n] == 3 for n in changed)  # keys move only to the new server...
    fair = 1 / 5
    assert abs(len(changed) / N - fair) < 0.01  # ...and only its share of them (20%)


def test_removing_a_server_moves_only_its_own_keys():
    servers = ((SERVERS[0], 1), (SERVERS[1], 2), (SERVERS[2], 1))
    before, after = placed(*servers), placed(servers[0], servers[2])
    changed = moved(before, [(0, 2)[index] for index in after])  # back to the old indexes
    assert {before[n] for n in changed} == {1}
    assert len(changed) == Counter(before)[1]


def test_changing_a_weight_moves_keys_only_to_that_server():
    before = placed((SERVERS[0], 1), (SERVERS[1], 2), (SERVERS[2], 1))
    after = placed((SERVERS[0], 1), (SERVERS[1], 3), (SERVERS[2], 1))
    changed = moved(before, after)
    assert {after[n] for n in changed} == {1}
    assert abs(len(changed) / N - (3 / 5 - 2 / 4)) < 0.01  # 10%: from 50% to 60%


def test_order_and_passwords_do_not_move_keys():
    first = partition.partition_of(["redis://a:6379/1", "redis://:pw@b:6379/1"], [1, 2])
    second = partition.partition_of(["rediss://:other@b:6379/1", "redis://a:6379/1?socket_timeout=1"], [2, 1])
    for key in KEYS[:1000]:
        assert first.nodes[first.index_for(key)].identity == second.nodes[second.index_for(key)].identity


def test_a_bucket_and_its_overflow_keys_share_a_server():
    nodes = [hrw.Node(identity, 1) for identity in SERVERS]
    for number in range(0, 16384, 97):
        bucket = b":s1:h{%x}" % number
        assert hrw.choose(nodes, bucket) == hrw.choose(nodes, bucket + b":" + b"\x00" * 12)
    assert hrw.route_key(b"{}x") == b"{}x"  # an empty tag is no tag (the Redis Cluster rule)


# Sessions on three real servers ------------------------------------------------


@functools.cache
def direct(index: int, db: int) -> Redis:
    return Redis.from_url(partitions.url(index, db))


def server_holding(name: bytes, db: int) -> list[int]:
    """Which of the three servers have the Redis key ``name`` in ``db``."""
    return [index for index in range(3) if direct(index, db).exists(name)]


@pytest.mark.parametrize("name", ["string-partitioned", "hash-partitioned"])
def test_each_session_lives_on_the_server_the_hashing_picks(name):
    config = CONFIGS[name]
    db = int(config["LOCATION"][0].rsplit("/", 1)[1])
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        storage = SessionStore()._storage
        client = caches["sessions"].client
        per_server: Counter[int] = Counter()
        try:
            for n in range(300):
                session = SessionStore()
                session["n"] = n
                session.save()
                name_ = storage.locate(session.session_key)[0]
                expected = client.partition.index_for(name_)
                assert server_holding(name_, db) == [expected]
                per_server[expected] += 1
        finally:
            partitions.raw("sessions").flushdb()
    assert len(per_server) == 3  # weights 1:2:1, every server holds some
    assert per_server[1] > per_server[0] and per_server[1] > per_server[2]


@pytest.mark.parametrize("mode", [STRING, HASH], ids=["string", "hash"])
def test_adding_a_server_keeps_every_session_but_its_share(mode):
    """What changing the pool does to live sessions: those the new server now wins are
    no longer found (a logout); every other one stays where it was."""
    extra = RedisServer(config=RECOMMENDED).start()
    try:
        three = [partitions.url(index, 3) for index in range(3)]
        before = {**_config(3, WEIGHTS=[1, 2, 1], **mode), "LOCATION": three}
        after = {
            **before,
            "LOCATION": [*three, f"{extra.url}/3"],
            "OPTIONS": {**before["OPTIONS"], "WEIGHTS": [1, 2, 1, 1]},
        }
        with override_settings(CACHES={"default": LOCMEM, "sessions": before}):
            keys = []
            for n in range(1500):
                session = SessionStore()
                session["n"] = n
                session.save()
                keys.append(session.session_key)
        with override_settings(CACHES={"default": LOCMEM, "sessions": after}):
            storage, client = SessionStore()._storage, caches["sessions"].client
            lost = [key for key in keys if not SessionStore().exists(key)]
            assert all(client.partition.index_for(storage.locate(key)[0]) == 3 for key in lost)
            share = len(lost) / len(keys)
            kind = "hash" if mode["USE_HASH"] else "string"
            print(f"\nadding a weight-1 server to 1:2:1, {kind} mode: {share:.1%} of 1500 sessions moved (fair: 20%)")
            assert 0.10 < share < 0.20 + 0.04
    finally:
        with override_settings(CACHES={"default": LOCMEM, "sessions": before}):
            partitions.raw("sessions").flushdb()
        extra.stop()


def test_unix_sockets_and_passwords_per_server():
    location = [f"{unix_socket().url}?db=4", partitions.url(1, 4), partitions.url(2, 4)]
    config = {**_config(4, **STRING), "LOCATION": location}
    config["OPTIONS"] = {"CLIENT_CLASS": "cache_sessions.partitioned.PartitionedClient", "USE_HASH": False}
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        keys = []
        for n in range(60):
            session = SessionStore()
            session["n"] = n
            session.save()
            keys.append(session.session_key)
        assert [SessionStore(key)["n"] for key in keys] == list(range(60))
        sizes = [redis.dbsize() for redis in caches["sessions"].client.servers()]
        assert sum(sizes) == 60 and all(sizes)
        partitions.raw("sessions").flushdb()


# The alias as a cache ------------------------------------------------------------


@pytest.fixture
def cache():
    with override_settings(CACHES={"default": LOCMEM, "sessions": CONFIGS["string-partitioned"]}):
        yield caches["sessions"]
        partitions.raw("sessions").flushdb()


def server_of_cache_key(cache, key: str, version: int | None = None) -> Redis:
    return cache.client.server_for(cache.make_key(key, version=version))


def test_ordinary_cache_calls_go_to_the_server_of_their_key(cache):
    for n in range(30):
        cache.set(f"k{n}", {"n": n}, 60)
    for n in range(30):
        assert server_of_cache_key(cache, f"k{n}").exists(cache.make_key(f"k{n}"))
        assert cache.get(f"k{n}") == {"n": n}
    assert cache.add("k0", "again") is False
    assert cache.has_key("k1")
    assert 55 <= cache.ttl("k2") <= 60
    assert cache.touch("k2", 120) and cache.ttl("k2") > 60
    assert cache.persist("k3") and cache.ttl("k3") is None
    cache.set("counter", 1)
    assert cache.incr("counter", 5) == 6 and cache.decr("counter") == 5
    with cache.lock("guard", timeout=5):
        assert server_of_cache_key(cache, "guard").exists(cache.make_key("guard"))
    cache.sadd("tags", "a", "b")
    assert cache.smembers("tags") == {"a", "b"}
    cache.zadd("board", {"alice": 3, "bob": 1})
    assert cache.zrange("board", 0, -1) == ["bob", "alice"]
    assert cache.delete("k4") and cache.get("k4") is None


def test_several_keys_take_a_round_trip_per_server(cache):
    data = {f"m{n}": n for n in range(40)}
    cache.set_many(data, 60)
    with sent_by_clients() as sent:
        assert cache.get_many(list(data)) == data
    assert sent.round_trips == 3  # one MGET per server
    assert cache.delete_many([f"m{n}" for n in range(10)]) == 10
    assert len(cache.keys("m*")) == 30
    assert sorted(cache.iter_keys("m*")) == sorted(f"m{n}" for n in range(10, 40))
    assert cache.delete_pattern("m1*") == 10
    cache.clear()
    assert partitions.raw("sessions").dbsize() == 0


def test_incr_version_moves_the_value_to_the_server_of_the_new_key(cache):
    moved_servers = 0
    for n in range(20):
        cache.set(f"v{n}", n, 60)
        old, new = server_of_cache_key(cache, f"v{n}"), server_of_cache_key(cache, f"v{n}", version=2)
        moved_servers += old is not new
        assert cache.incr_version(f"v{n}") == 2
        assert cache.get(f"v{n}", version=2) == n and cache.get(f"v{n}") is None
    assert moved_servers  # some did change servers


def test_commands_on_keys_of_different_servers_fail_loudly(cache):
    keys = [f"s{n}" for n in range(12)]
    for key in keys:
        cache.sadd(key, "x")
    with pytest.raises(CrossServerKeys, match="hash tag"):
        cache.sinter(*keys)
    cache.sadd("{cart:7}:a", "x", "y")
    cache.sadd("{cart:7}:b", "y", "z")
    assert cache.sinter("{cart:7}:a", "{cart:7}:b") == {"y"}  # a shared tag: one server


def test_the_raw_client_needs_a_key(cache):
    with pytest.raises(TypeError, match="get_client"):
        cache.get_client()
    key = cache.make_key("raw")
    assert cache.get_client(key) is cache.client.server_for(key)
    assert cache_sessions.get_client("sessions", key=key) is cache.client.server_for(key)
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(4)}):  # one server: the key is unused
        assert cache_sessions.get_client("sessions", key=key) is caches["sessions"].get_client(key)


# Reports, checks, configuration -----------------------------------------------


def test_cleanuprs_and_stats_cover_and_name_every_server():
    with override_settings(CACHES={"default": LOCMEM, "sessions": CONFIGS["hash-partitioned"]}):
        try:
            for _ in range(60):
                SessionStore().create()
            out = StringIO()
            call_command("cleanuprs", "--all", stdout=out)
            lines = out.getvalue().splitlines()
            ports = [server.port for server in partitions.servers()]
            assert [line.split(":")[1] for line in lines[:3]] == [f"{port}/2" for port in ports]
            assert lines[3].startswith("all servers: ") and "60 fields seen" in lines[3]
            out = StringIO()
            call_command("cleanuprs", "--stats", stdout=out)
            assert out.getvalue().count("sessions (fields):") == 4 and "all 3 servers:" in out.getvalue()
            assert "sessions (fields): 60" in out.getvalue().split("all 3 servers:")[1]
        finally:
            partitions.raw("sessions").flushdb()


def check_messages(config) -> list[tuple[str, str]]:
    from cache_sessions.checks.topology import check_weights

    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        return [(message.id, message.msg) for message in check_weights()]


def partitioned(weights, location=None):
    location = location or ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0", "redis://127.0.0.1:3/0"]
    return {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": location, "OPTIONS": {"WEIGHTS": weights}}


@pytest.mark.parametrize(
    "weights",
    [[1, 0, 1], [1, -2, 1], [1, 2], [1, math.nan, 1], [1, True, 1], [1, "2", 1], "1,2,1"],
    ids=str,
)
def test_weights_that_make_no_sense_are_errors(weights):
    [(message_id, text)] = check_messages(partitioned(weights))
    assert message_id == "cache_sessions.E005", text
    bad = override_settings(CACHES={"default": LOCMEM, "sessions": partitioned(weights)})
    with bad, pytest.raises(ImproperlyConfigured, match="WEIGHTS"):
        caches["sessions"].client  # noqa: B018


def test_a_server_listed_twice_is_an_error():
    location = ["redis://127.0.0.1:1/0", "redis://:pw@127.0.0.1:1/0", "redis://127.0.0.1:1/1"]
    [(message_id, text)] = check_messages(partitioned(None, location))
    assert message_id == "cache_sessions.E005" and "twice" in text


def test_doubtful_weights_are_warnings():
    [(message_id, text)] = check_messages(partitioned([1, 1, 0.001]))
    assert message_id == "cache_sessions.W009" and "0.05%" in text
    [(message_id, text)] = check_messages(partitioned([1], ["redis://127.0.0.1:1/0"]))
    assert message_id == "cache_sessions.W009" and "single server" in text
    [(message_id, text)] = check_messages({**partitioned([1, 2, 1]), "KEY_PREFIX": "site{1}"})
    assert message_id == "cache_sessions.W009" and "one server" in text
    ignored = {**partitioned([1, 2, 1]), "BACKEND": "django_redis.cache.RedisCache"}
    [(message_id, text)] = check_messages(ignored)
    assert message_id == "cache_sessions.W009" and "ignored" in text
    assert check_messages(partitioned([1, 2.5, 1])) == []


def test_weights_choose_the_partitioned_client_and_the_registry_knows_them():
    with override_settings(CACHES={"default": LOCMEM, "sessions": partitioned([1, 2, 1])}):
        assert isinstance(caches["sessions"].client, PartitionedClient)
    with override_settings(CACHES={"sessions": partitioned([1, 2, 1])}):
        from cache_sessions.checks.options import check_options

        assert check_options() == []  # WEIGHTS is not an unknown option (W004)


async def test_the_async_path_is_native_on_every_server():
    with override_settings(CACHES={"default": LOCMEM, "sessions": CONFIGS["hash-partitioned"]}):
        keys = []
        for n in range(12):
            session = SessionStore()
            await session.aset("n", n)
            await session.asave()
            keys.append(session.session_key)
        with sent_by_clients() as sent:
            loaded = [await SessionStore(key).aget("n") for key in keys]
        assert loaded == list(range(12))
        assert sent.round_trips == sent.asyncio == 12  # no thread hop, whichever server
        from asgiref.sync import sync_to_async

        await sync_to_async(partitions.raw("sessions").flushdb)()
