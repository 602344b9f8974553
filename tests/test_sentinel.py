"""Sentinel: the follower (lazy, one per process and group, restarted after fork, never
closing a connection in use), READONLY after a demotion, and real failovers of a
1 primary + 1 replica + 3 sentinels group during save loops, in both modes.

The session contract runs on the Sentinel configurations of ``tests/configs.py``.
The failover tests come last in this file and leave the group serving."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis import Redis

from cache_sessions import follower as followers
from cache_sessions.backend import SessionStore
from cache_sessions.cache import RedisCache
from cache_sessions.sentinel import FollowingPool, NewestSentinel, SentinelSessionClient
from tests import sentinels
from tests.failover import SaveLoop
from tests.fault_servers import crash, wait_for

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
STOCK = {  # django-redis's documented Sentinel setup: how sessions reached Sentinel before
    "CLIENT_CLASS": "django_redis.client.SentinelClient",
    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
}


@pytest.fixture(scope="module")
def group() -> sentinels.SentinelGroup:
    return sentinels.group()


def alias(group: sentinels.SentinelGroup, db: int, use_hash: bool, **options: Any) -> dict[str, Any]:
    """What a user writes: our backend, SENTINELS and redis://<service>/<db>."""
    return {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": group.location(db),
        "OPTIONS": {"SENTINELS": group.addresses, "USE_HASH": use_hash, "SOCKET_TIMEOUT": 1, **options},
    }


def direct(server: Any, db: int, use_hash: bool) -> dict[str, Any]:
    """An alias on one data node itself (to read what a given server holds)."""
    return {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": f"{server.url}/{db}",
        "OPTIONS": {"USE_HASH": use_hash},
    }


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
        assert cache.get_client().wait(1, 1000) == 1
        assert cache.get("plain cache key") == 1
        cache.clear()


def test_a_session_alias_on_sentinel_without_the_follower_is_warned_about(group):
    from cache_sessions.topology_checks import check_sentinel_follows_failovers

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


# Real failovers, both modes at once (they take seconds: one of each) ------------------


def run_loops(configs: dict[str, Any], event: Any, settle: float = 1.5) -> list[SaveLoop]:
    """Save loops on the ``loop-*`` aliases around ``event()``; they stop ``settle``
    seconds after the sentinels name the new primary."""
    loops = [SaveLoop(name, sessions=100) for name in configs if name.startswith("loop-")]
    for loop in loops:
        loop.prepare()
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.3)
        event()
    finally:
        time.sleep(settle)
        for loop in loops:
            loop.finish()
    return loops


def test_primary_killed_errors_for_a_bounded_time_then_saves_resume(group):
    group.ready()
    old, new = group.primary(), group.replica()
    configs = {
        "default": LOCMEM,
        "loop-string": alias(group, 3, False),
        "loop-hash": alias(group, 4, True),
        "check-loop-string": direct(new, 3, False),
        "check-loop-hash": direct(new, 4, True),
    }
    with override_settings(CACHES=configs):

        def kill() -> None:
            crash(old)
            wait_for(lambda: group.role(new) == "master", timeout=15, what="the replica promoted")

        try:
            loops = run_loops(configs, kill)
        finally:
            sentinels.restart_as_replica(old, new)
        for loop in loops:
            figures = loop.summary(f"check-{loop.alias}")
            print(f"\nSIGKILL of the primary: {figures}")
            assert not loop.lost_seen and not loop.lost_at_the_end(f"check-{loop.alias}")
            # Errors until the sentinels agree the primary is down (1 s here) and pick a replica
            # (measured: 0.9-2.1 s), then requests wait for the promotion; a slow election adds seconds.
            assert loop.errors > 0 and loop.error_window() < 6.0
            assert loop.longest_gap < 8.0 and loop.saves > 200  # and saves went on without a restart
        Redis(port=new.port, db=3).flushdb()
        Redis(port=new.port, db=4).flushdb()


def test_forced_failover_loses_no_acknowledged_save(group):
    """SENTINEL FAILOVER during save loops: ours loses nothing (it pauses while the replica is
    promoted, then writes to it); django-redis's stock Sentinel client, in the same run, keeps
    writing to the old primary, whose writes the failover discards."""
    group.ready()
    old, new = group.primary(), group.replica()
    configs = {
        "default": LOCMEM,
        "loop-string": alias(group, 3, False),
        "loop-hash": alias(group, 4, True),
        "loop-stock-string": alias(group, 5, False, **STOCK),
        "loop-stock-hash": alias(group, 6, True, **STOCK),
    }
    configs |= {f"check-{name}": direct(new, 3 + n, "hash" in name) for n, name in enumerate(list(configs)[1:])}
    with override_settings(CACHES=configs):

        def failover() -> None:
            group.sentinel().execute_command("SENTINEL", "FAILOVER", sentinels.SERVICE)
            wait_for(lambda: group.primary() is new, timeout=15, what="the sentinels naming the new primary")

        loops = run_loops(configs, failover, settle=1.0)
        for loop in loops:
            print(f"\nSENTINEL FAILOVER: {loop.summary(f'check-{loop.alias}')}")
        ours, stock = loops[:2], loops[2:]
        for loop in ours:
            assert not loop.lost_seen and not loop.lost_at_the_end(f"check-{loop.alias}")
            assert loop.errors == 0 and loop.longest_gap < followers.PAUSE_SECONDS + 0.5
        for loop in stock:  # the loss the test must be able to see
            assert loop.lost_at_the_end(f"check-{loop.alias}")
        for db in range(3, 7):
            Redis(port=new.port, db=db).flushdb()
            Redis(port=old.port, db=db).flushdb()
