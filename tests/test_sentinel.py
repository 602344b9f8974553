"""Sentinel: the follower (lazy, one per process and group, restarted after fork, never
closing a connection in use), READONLY after a demotion, and primary discovery.

Real failovers during save loops are in ``test_sentinel_failover.py``; the session
contract runs on the Sentinel configurations of ``tests/support/configs.py``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache_sessions.backend import SessionStore
from cache_sessions.cache import RedisCache
from cache_sessions.sentinel import FollowingPool, NewestSentinel, SentinelSessionClient
from cache_sessions.topology import follower as followers
from tests.support import sentinels

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM, STOCK, alias = sentinels.LOCMEM, sentinels.STOCK, sentinels.alias


@pytest.fixture(scope="module")
def group() -> sentinels.SentinelGroup:
    return sentinels.group()


def follower_threads(follower: followers.Follower | None = None) -> list[threading.Thread]:
    """The live listening threads (of ``follower``, or of any)."""
    prefix = "cache_sessions sentinel follower" + (f" {id(follower):x}" if follower else "")
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_sentinels_and_a_service_url_are_all_it_takes(group):
    with override_settings(CACHES={"default": LOCMEM, "sessions": alias(group, 9, True)}):
        cache = caches["sessions"]
        assert isinstance(cache, RedisCache) and isinstance(cache.client, SentinelSessionClient)
        pool = cache.get_client().connection_pool
        assert isinstance(pool, FollowingPool) and isinstance(pool.sentinel_manager, NewestSentinel)
        session = SessionStore()
        session["x"] = 1
        session.save()
        assert Redis(port=group.primary().port, db=9).dbsize() == 1
        cache.set("plain cache key", 1)  # the alias stays a cache (django-redis reads it from a replica)
        replicas = len(group.replicas())  # django-redis reads from any of them
        assert cache.get_client().wait(replicas, 1000) == replicas
        assert cache.get("plain cache key") == 1
        cache.clear()


def test_a_session_alias_on_sentinel_without_the_follower_is_warned_about(group):
    from cache_sessions.checks.topology import check_sentinel_follows_failovers

    # Each on a DB of its own: django-redis keeps one pool per URL, made by whichever alias connects first.
    stock = alias(group, 7, True, **STOCK)
    with override_settings(CACHES={"default": LOCMEM, "sessions": stock}):
        [message] = check_sentinel_follows_failovers()
        assert message.id == "cache_sessions.W010"
    with override_settings(CACHES={"default": LOCMEM, "sessions": alias(group, 8, True)}):
        assert check_sentinel_follows_failovers() == []


def test_one_follower_per_process_and_group_started_by_the_first_command(group):
    # Sentinel credentials or timeouts of their own make these aliases a group of their own.
    own = {"SENTINEL_KWARGS": {"socket_timeout": 1.5}}
    configs = {"default": LOCMEM, "a": alias(group, 10, False, **own), "b": alias(group, 11, True, **own)}
    with override_settings(CACHES=configs):
        pools = [caches[name].get_client().connection_pool for name in ("a", "b")]
        follower = pools[0].follower
        assert follower is pools[1].follower  # both aliases share one...
        assert not follower_threads(follower)  # ...which building clients and pools does not start
        caches["a"].set("k", 1)
        caches["b"].set("k", 1)
        assert len(follower_threads(follower)) == 3  # a pub/sub connection per sentinel
        for name in ("a", "b"):
            caches[name].clear()
        follower.stop()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_its_own_follower(group):
    with override_settings(CACHES={"default": LOCMEM, "sessions": alias(group, 0, False)}):
        pool = caches["sessions"].get_client().connection_pool
        caches["sessions"].set("k", 1)
        assert pool.follower.pid == os.getpid()
        child = os.fork()
        if child == 0:  # the child: no thread of the parent survived the fork
            code = 1
            try:
                before = pool.follower.pid != os.getpid() and not follower_threads()
                caches["sessions"].set("k", 2)
                code = 0 if before and pool.follower.pid == os.getpid() and len(follower_threads()) == 3 else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert caches["sessions"].get("k") == 2 and pool.follower.pid == os.getpid()
        caches["sessions"].clear()


def private_pool(group: sentinels.SentinelGroup, service: str = sentinels.SERVICE) -> FollowingPool:
    """A pool of our own (not django-redis's per-URL one), so switching it disturbs nobody."""
    manager = NewestSentinel(group.addresses, sentinel_kwargs={"socket_timeout": 1})
    return FollowingPool(service, manager, is_master=True, check_connection=False)


def test_a_switch_closes_idle_connections_and_never_one_in_use(group):
    pool = private_pool(group)
    busy, idle = pool.get_connection(), pool.get_connection()
    pool.release(idle)
    assert busy._sock is not None and idle._sock is not None
    pool.switch(("127.0.0.1", group.replica().port))
    assert idle._sock is None  # idle: closed at once
    assert busy._sock is not None  # in use: left alone...
    busy.send_command("PING")
    assert busy.read_response() == b"PONG"
    pool.release(busy)
    assert busy._sock is None  # ...and closed when it comes back
    pool.disconnect()


def test_events_pause_switch_and_resume_the_pools_of_their_service(group):
    pool, other = private_pool(group, "other-service"), private_pool(group)
    follower = pool.follower
    assert follower is other.follower
    follower.handle("+selected-slave", "slave 127.0.0.1:2 127.0.0.1 2 @ other-service 127.0.0.1 1")
    assert not pool.resumed.is_set() and other.resumed.is_set()
    started = time.monotonic()
    threading.Timer(0.2, follower.handle, ("+switch-master", "other-service 127.0.0.1 1 127.0.0.1 2")).start()
    pool._wait_for_failover()
    assert 0.15 < time.monotonic() - started < 1.0  # waited for the switch, not for PAUSE_SECONDS
    assert pool.master_address == ("127.0.0.1", 2)
    follower.handle("+selected-slave", "slave 127.0.0.1:1 127.0.0.1 1 @ other-service 127.0.0.1 2")
    follower.handle("-failover-abort-no-good-slave", "master other-service 127.0.0.1 2")
    assert pool.resumed.is_set()


def test_a_group_is_told_apart_by_its_settings_never_by_the_objects_redis_py_adds(group):
    """Managers built as the installed redis-py builds them (8.2 puts a ``Retry`` object into
    every ``Sentinel``'s ``sentinel_kwargs``): equal settings share a follower, whatever
    objects come with them; another timeout, user, password or TLS setting is another group."""

    def follower_of(**sentinel_kwargs: Any) -> followers.Follower | None:
        manager = NewestSentinel(group.addresses, sentinel_kwargs={"socket_timeout": 1, **sentinel_kwargs})
        return FollowingPool(sentinels.SERVICE, manager, is_master=True, check_connection=False).follower

    shared = follower_of()
    assert shared is not None and follower_of() is shared
    assert follower_of(retry=Retry(NoBackoff(), 3)) is shared
    others = [
        follower_of(socket_timeout=2),
        follower_of(password="secret"),
        follower_of(username="alice", password="secret"),
        follower_of(ssl=True, ssl_ca_certs="/etc/ssl/a.pem"),
        follower_of(ssl=True, ssl_ca_certs="/etc/ssl/b.pem"),
    ]
    assert len({id(shared), *map(id, others)}) == 1 + len(others)


def test_a_paused_pool_carries_on_after_the_pause_if_no_switch_comes(group, monkeypatch):
    pool = private_pool(group, "other-service")
    pool.pause(0.1)
    started = time.monotonic()
    pool._wait_for_failover()
    pool._wait_for_failover()
    assert 0.05 < time.monotonic() - started < 0.5
    assert pool.resumed.is_set()


@pytest.mark.parametrize("use_hash", [False, True], ids=["string", "hash"])
def test_a_demoted_primary_is_left_at_the_first_readonly(group, use_hash):
    """Connections still on a server that became a replica get READONLY: the write is
    retried on the primary the sentinels name, not reported as an outage."""
    with override_settings(CACHES={"default": LOCMEM, "sessions": alias(group, 12, use_hash)}):
        session = SessionStore()
        session["n"] = 1
        session.save()
        pool = caches["sessions"].get_client().connection_pool
        pool.proxy.master_address = ("127.0.0.1", group.replica().port)  # as if the primary moved there
        pool.disconnect()
        session["n"] = 2
        session.save()
        assert SessionStore(session.session_key)["n"] == 2
        assert pool.master_address == ("127.0.0.1", group.primary().port)
        caches["sessions"].clear()
