"""Redis Cluster (3 primaries): configuration, the cache API, sessions per node,
sweeps and checks over every primary. The Django session contract runs here too,
from ``tests/support/configs.py`` (``*-cluster`` configurations); failover is in
``test_cluster_failover.py``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from django_redis.exceptions import ConnectionInterrupted
from redis import Redis
from redis.cluster import LoadBalancingStrategy
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from cache_sessions.backend import SessionStore
from cache_sessions.cluster import ClusterConnectionFactory, ClusterRedis, close_all
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.format.codec import Codec
from cache_sessions.storage.sweep import sample_buckets
from cache_sessions.testing import free_port
from cache_sessions.topology import server_facts as facts
from tests.support.clusters import contract_cluster
from tests.support.configs import _cluster_config
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@contextmanager
def cluster_alias(**options: Any) -> Iterator[ClusterRedis]:
    """The ``sessions`` alias on the contract cluster; yields its raw (cluster) client."""
    config = _cluster_config(**options)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        redis = caches["sessions"].client.get_client()
        try:
            yield redis
        finally:
            redis.flushdb()


def primaries_holding(redis: ClusterRedis) -> dict[int, int]:
    """``{port: keys}`` of every primary."""
    return {node.port: redis.get_redis_connection(node).dbsize() for node in redis.get_primaries()}


def owner_port(redis: ClusterRedis, name: bytes) -> int:
    return int(redis.get_node_from_key(name).port)


# Configuration ----------------------------------------------------------


@pytest.mark.parametrize("form", ["list", "comma-separated", "one node"])
def test_location_forms_share_one_cluster_client_per_process(form):
    urls = contract_cluster().urls
    location = {"list": urls, "comma-separated": ",".join(urls), "one node": urls[1]}[form]
    config = {**_cluster_config(), "LOCATION": location}
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        cache = caches["sessions"]
        cache.set("k", 1)
        mine = cache.client.get_client()
        theirs: list[Any] = []
        thread = threading.Thread(target=lambda: theirs.append(caches["sessions"].client.get_client()))
        thread.start()
        thread.join()
        assert theirs == [mine]  # another thread, another cache object: the same RedisCluster
        assert isinstance(mine, ClusterRedis)
        assert len(mine.get_primaries()) == 3  # discovered from any one startup node
        assert cache.get("k") == 1
        mine.flushdb()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"LOCATION": "unix:///tmp/redis.sock"}, "redis://host:port or rediss://host:port URLs, not unix://"),
        ({"LOCATION": "redis://127.0.0.1:7000/2"}, "only database 0"),
        ({"LOCATION": "redis://a:1,redis://user:pw@b:2"}, "differ from the first only by host and port"),
        ({"OPTIONS": {"PARSER_CLASS": "redis.connection._RESP2Parser"}}, "PARSER_CLASS"),
        ({"OPTIONS": {"CONNECTION_POOL_KWARGS": {"health_check_interval": 5}}}, "'health_check_interval'"),
        ({"OPTIONS": {"REDIS_CLIENT_CLASS": "redis.Redis"}}, "is not a redis.cluster.RedisCluster"),
        ({"OPTIONS": {"CONNECTION_FACTORY": "django_redis.pool.ConnectionFactory"}}, "ClusterConnectionFactory"),
    ],
)
def test_what_a_cluster_cannot_be_is_refused_clearly(change, message):
    config = _cluster_config()
    options = {**config["OPTIONS"], **change.pop("OPTIONS", {})}
    with (
        override_settings(CACHES={"default": LOCMEM, "sessions": {**config, **change, "OPTIONS": options}}),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        caches["sessions"].get("k")


def test_cluster_settings_are_passed_to_redis_py():
    config = _cluster_config(SOCKET_TIMEOUT=3, REDIS_CLIENT_KWARGS={"reinitialize_steps": 7})
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        redis = caches["sessions"].client.get_client()
        assert redis.reinitialize_steps == 7
        node = redis.get_redis_connection(redis.get_primaries()[0])
        assert node.connection_pool.connection_kwargs["socket_timeout"] == 3
        assert redis is not caches["default"]  # other settings, another client


def test_an_unreachable_cluster_is_connection_interrupted_and_unavailable():
    config = {**_cluster_config(), "LOCATION": f"redis://user:s3cret@127.0.0.1:{free_port()}"}
    ignoring = {**config, "OPTIONS": {**config["OPTIONS"], "IGNORE_EXCEPTIONS": True}}
    with override_settings(CACHES={"default": LOCMEM, "sessions": config, "ignoring": ignoring}):
        with pytest.raises(RedisConnectionError):  # what django-redis raises for one server that is down
            caches["sessions"].get("k")
        with pytest.raises(ConnectionInterrupted) as info:
            caches["sessions"].client.get("k")
        assert "s3cret" not in str(info.value)
        assert caches["ignoring"].get("k") is None  # django-redis's IGNORE_EXCEPTIONS applies
        with pytest.raises(SessionStoreUnavailable):
            SessionStore("a" * 32).load()
        ids = [m.id for m in run_checks(tags=["caches"]) if m.id.startswith("cache_sessions")]
        assert ids == ["cache_sessions.I001"]


# A web server that imports the app, then forks its workers (gunicorn --preload),
# in a process of its own: single-threaded, as such a master is.
FORKING_SERVER = """
import os, sys, django
from django.conf import settings
location = sys.argv[1].split(",")
options = {"CLIENT_CLASS": "cache_sessions.cluster.ClusterClient"}
settings.configure(
    SECRET_KEY="fork", SESSION_CACHE_ALIAS="default",
    CACHES={"default": {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": location, "OPTIONS": options}},
)
django.setup()
from cache_sessions.backend import SessionStore
from cache_sessions.cluster import ClusterConnectionFactory
parent = SessionStore()
parent["who"] = "parent"
parent.save()  # the parent's cluster client exists, with open sockets
pid = os.fork()
if pid == 0:
    fresh = ClusterConnectionFactory._clusters == {}  # the parent's client stayed in the parent
    child = SessionStore()
    child["who"] = "child"
    child.save()
    ok = fresh and SessionStore(parent.session_key)["who"] == "parent"
    print(child.session_key if ok else "child failed", flush=True)
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert SessionStore(parent.session_key)["who"] == "parent"  # the parent's sockets still work
print("parent ok", flush=True)
"""


def test_a_forked_child_makes_its_own_cluster_client():
    location = ",".join(contract_cluster().urls)
    out = subprocess.run(
        [sys.executable, "-c", FORKING_SERVER, location], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    child_key, parent = out.stdout.splitlines()
    assert parent == "parent ok"
    with cluster_alias():
        assert SessionStore(child_key)["who"] == "child"  # written by the child, read here


def test_close_all_closes_and_forgets_every_cluster_client():
    with cluster_alias() as redis:
        caches["sessions"].set("k", 1)
        close_all()
        assert ClusterConnectionFactory._clusters == {}
        assert caches["sessions"].get("k") == 1  # a new client, made on first use
        assert caches["sessions"].client.get_client() is not redis  # (the old one still flushes: it reconnects)


def test_close_connection_closes_every_node_and_reconnects():
    with cluster_alias(CLOSE_CONNECTION=True) as redis:
        cache = caches["sessions"]
        cache.set_many({f"k{n}": n for n in range(30)})
        pools = [redis.get_redis_connection(node).connection_pool for node in redis.get_primaries()]

        def open_sockets() -> int:
            return sum(conn._sock is not None for pool in pools for conn in pool._available_connections)

        assert open_sockets() >= 3
        cache.close()
        assert open_sockets() == 0
        assert cache.get("k7") == 7


# The cache API ----------------------------------------------------------


def test_the_cache_api_works_across_every_primary():
    with cluster_alias() as redis:
        cache = caches["sessions"]
        data = {f"key{n}": {"n": n} for n in range(200)}
        cache.set_many(data, 60)
        assert all(count > 0 for count in primaries_holding(redis).values())  # really spread
        assert cache.get_many(list(data)) == data
        assert len(cache.keys("key*")) == 200  # every primary, not one node
        assert sorted(cache.iter_keys("key1*")) == sorted(k for k in data if k.startswith("key1"))
        assert redis.dbsize() == 200
        assert cache.delete_many([f"key{n}" for n in range(50)]) == 50
        assert cache.delete_pattern("key1*") == len([n for n in range(50, 200) if str(n).startswith("1")])
        assert cache.add("key60", "x") is False
        assert cache.add("new", "x", 30) is True
        assert cache.has_key("new") and 25 <= cache.ttl("new") <= 30 and cache.pttl("new") > 25000
        assert cache.expire("new", 100) and 95 <= cache.ttl("new") <= 100
        assert cache.persist("new") and cache.ttl("new") is None
        assert cache.touch("new", 10) and cache.ttl("new") <= 10
        cache.set("n", 1)
        assert (cache.incr("n", 5), cache.decr("n")) == (6, 5)
        assert cache.incr_version("n") == 2 and cache.get("n", version=2) == 5
        with cache.lock("lock", timeout=5):
            assert not cache.lock("lock", timeout=5).acquire(blocking=False)
        cache.hset("h", "f", 1)
        assert cache.hlen("h") == 1 and cache.hexists("h", "f")
        cache.sadd("{tag}a", 1, 2)
        cache.sadd("{tag}b", 2, 3)
        assert cache.sinter("{tag}a", "{tag}b") == {2}  # several keys in one slot: fine
        cache.clear()
        assert redis.dbsize() == 0 and all(count == 0 for count in primaries_holding(redis).values())


def test_what_a_cluster_cannot_do_fails_loudly():
    with cluster_alias() as redis:
        cache = caches["sessions"]
        cache.sadd("a", 1)
        cache.sadd("b", 1)
        assert key_slot(b":1:a") != key_slot(b":1:b")
        with pytest.raises(RedisClusterException, match="same key slot"):
            cache.sinter("a", "b")
        with pytest.raises(RedisClusterException, match="same key slot"):
            redis.mget(":1:a", ":1:b")  # the raw client: one MGET across slots


# Sessions per node --------------------------------------------------------


@pytest.mark.parametrize("use_hash", [True, False], ids=["hash", "string"])
def test_each_operation_is_one_round_trip_to_the_node_owning_the_session(use_hash):
    with cluster_alias(USE_HASH=use_hash) as redis:
        session = SessionStore()
        session["x"] = 1
        session.save()
        owner = owner_port(redis, session._storage.locate(session.session_key)[0])
        operations = {
            "load": lambda: SessionStore(session.session_key).load(),
            "save": lambda: session.save(),
            "exists": lambda: SessionStore().exists(session.session_key),
            "delete": lambda: SessionStore().delete(session.session_key),
        }
        for operation in operations.values():  # scripts loaded (NOSCRIPT: SCRIPT LOAD on every node, once)
            operation()
        session.save(must_create=True)
        for name, operation in operations.items():
            with sent_by_clients() as sent:
                operation()
            assert (name, sent.round_trips, dict(sent.ports)) == (name, 1, {owner: 1})


def test_sessions_spread_over_every_primary_and_overflow_keys_share_their_buckets_slot():
    with cluster_alias(HASH_MAX_INLINE=40) as redis:
        for _ in range(60):
            session = SessionStore()
            session["big"] = "x" * 100
            session.save()
            described = session._storage.describe(session.session_key)
            assert described["overflow_key"] is not None
            assert key_slot(described["overflow_key"]) == key_slot(described["key"])
        assert all(count > 0 for count in primaries_holding(redis).values())


def expired_everywhere(count: int) -> None:
    """``count`` expired sessions left in buckets all over the cluster."""
    storage = SessionStore()._storage
    value = Codec().encode({"x": 1}, expires_at=int(time.time()) - 10)
    for n in range(count):
        bucket, field, _ = storage.locate(f"expired{n:04d}")
        storage.redis_for(bucket).hset(bucket, field, value)


def cleanuprs(*args: str) -> str:
    out = StringIO()
    call_command("cleanuprs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_cleanuprs_and_clearsessions_walk_every_primary():
    with cluster_alias(BUCKETS=64) as redis:
        live = [SessionStore() for _ in range(30)]
        for session in live:
            session.save()
        expired_everywhere(90)
        dry_run = cleanuprs("--all", "--dry-run")
        assert "120 fields seen" in dry_run and "90 expired would remove" in dry_run
        stats = cleanuprs("--stats")
        assert "sessions (fields): 120" in stats
        with sent_by_clients() as sent:
            assert "90 expired removed" in cleanuprs("--all")
        assert "scan" in sent.commands and "keys" not in sent.commands
        assert {port for port, _ in sent.ports.items()} == set(primaries_holding(redis))
        assert all(SessionStore().exists(session.session_key) for session in live)
        expired_everywhere(90)
        call_command("clearsessions")
        assert "sessions (fields): 30" in cleanuprs("--stats")
        expired_everywhere(90)
        assert "expired removed" in cleanuprs("--sample", "64")  # every bucket, all nodes
        assert "sessions (fields): 30" in cleanuprs("--stats")


def tagged_bucket(session_key: str) -> str:
    """A custom HASH_KEY_GENERATOR: 16 buckets, each its own {tag}."""
    return f"b{{{zlib.crc32(session_key.encode()) % 16}}}"


def test_sampling_custom_buckets_asks_randomkey_of_each_primary_in_its_own_pipeline():
    with cluster_alias(HASH_KEY_GENERATOR=tagged_bucket) as redis:
        for _ in range(40):
            SessionStore().save()
        with sent_by_clients() as sent:
            found = sample_buckets(SessionStore()._storage, 30)
        assert found and all(name.startswith(b":s1:b{") for name in found)
        assert sent.commands == {"randomkey": 30}  # 10 per primary...
        assert (sent.round_trips, set(sent.ports)) == (3, set(primaries_holding(redis)))  # ...in one pipeline each
        assert "expired removed" in cleanuprs("--sample", "30")


@pytest.fixture
def primary_limits():
    """Set the listpack value limit of one primary for a test, and put it back."""
    redis = contract_cluster()
    changed: list[Any] = []

    def set_limit(value: int) -> None:
        from redis import Redis

        admin = Redis(port=redis.primaries[1].port)
        changed.append((admin, admin.config_get("hash-max-ziplist-value")["hash-max-ziplist-value"]))
        admin.config_set("hash-max-ziplist-value", value)
        facts.forget()

    yield set_limit
    for admin, original in changed:
        admin.config_set("hash-max-ziplist-value", original)
        admin.close()
    facts.forget()


def check_ids() -> list[str]:
    return [message.id for message in run_checks(tags=["caches"]) if message.id.startswith("cache_sessions")]


def test_the_smallest_listpack_limit_of_the_primaries_wins(primary_limits):
    with cluster_alias():
        assert SessionStore()._storage.inline_limit() == 256
        primary_limits(100)
        with sent_by_clients() as sent:
            assert SessionStore()._storage.inline_limit() == 100
        assert sent.commands["config"] == 3 and len(sent.ports) == 3  # one CONFIG GET per primary
    with cluster_alias(HASH_MAX_INLINE=200):
        assert check_ids() == ["cache_sessions.W005"]


ROUND_ROBIN = LoadBalancingStrategy.ROUND_ROBIN


def shared_tag(session_key: str) -> str:
    return f"b{{sessions}}{zlib.crc32(session_key.encode()) % 16}"


def no_tag(session_key: str) -> str:
    return f"b{zlib.crc32(session_key.encode()) % 16}"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, []),
        ({"USE_HASH": False}, []),
        ({"HASH_KEY_GENERATOR": tagged_bucket}, []),
        ({"prefix": "site{1}"}, ["cache_sessions.E004"]),
        ({"prefix": "site}", "USE_HASH": False}, ["cache_sessions.E004"]),
        ({"HASH_KEY_GENERATOR": no_tag}, ["cache_sessions.E004"]),
        ({"HASH_KEY_GENERATOR": shared_tag}, ["cache_sessions.W007"]),
        ({"BUCKETS": 1}, ["cache_sessions.W007"]),
        (
            {"REDIS_CLIENT_KWARGS": {"load_balancing_strategy": LoadBalancingStrategy.ROUND_ROBIN}},
            ["cache_sessions.W008"],
        ),
    ],
    ids=[
        *("defaults", "string", "own-tags", "tag-in-prefix", "brace-in-prefix", "no-tag", "shared-tag", "one-bucket"),
        "replica-reads",
    ],
)
def test_checks_reject_names_a_cluster_cannot_serve(options, expected):
    with cluster_alias(**options):
        assert check_ids() == expected


def test_scripts_are_reloaded_on_every_node_after_script_flush():
    with cluster_alias() as redis:
        session = SessionStore()
        session["x"] = 1
        session.save()
        redis.script_flush()  # every primary
        session["x"] = 2
        session.save()
        assert SessionStore(session.session_key)["x"] == 2


def test_bucket_records_on_a_cluster():
    with cluster_alias():
        client = caches["sessions"].client
        for n in range(20):
            assert client.bucket_set(f"record{n}", {"n": n}, 60)
        assert [client.bucket_get(f"record{n}")["n"] for n in range(20)] == list(range(20))
        client.bucket_delete("record3")
        assert not client.bucket_exists("record3")


def test_min_replicas_to_write_refusals_are_unavailable_not_errors():
    """A primary short of replicas in sync (min-replicas-to-write) refuses writes: a 503, retried later."""
    admins = [Redis(port=server.port) for server in contract_cluster().primaries]
    with cluster_alias(USE_HASH=False):
        session = SessionStore()
        session.save()
        try:
            for admin in admins:
                admin.config_set("min-replicas-to-write", 1)  # and these primaries have none
            session["x"] = 1
            with pytest.raises(SessionStoreUnavailable, match="min-replicas-to-write"):
                session.save()
        finally:
            for admin in admins:
                admin.config_set("min-replicas-to-write", 0)
                admin.close()


def test_credentials_in_the_urls_reach_every_node():
    admins = [Redis(port=server.port) for server in contract_cluster().primaries]
    for admin in admins:
        admin.execute_command("ACL", "SETUSER", "clusteruser", "reset", "on", ">s3cret", "~*", "+@all")
    urls = [url.replace("redis://", "redis://clusteruser:s3cret@") for url in contract_cluster().urls]
    try:
        with override_settings(CACHES={"default": LOCMEM, "sessions": {**_cluster_config(), "LOCATION": urls}}):
            session = SessionStore()
            session["x"] = 1
            session.save()
            assert SessionStore(session.session_key)["x"] == 1
            caches["sessions"].set_many({f"k{n}": n for n in range(30)})  # every primary
            assert len(caches["sessions"].get_many([f"k{n}" for n in range(30)])) == 30
            who = {node.acl_whoami() for node in SessionStore()._storage.servers()}
            assert who == {"clusteruser"}
            caches["sessions"].clear()
    finally:
        for admin in admins:
            admin.execute_command("ACL", "DELUSER", "clusteruser")
            admin.close()
