"""Native asyncio on a Sentinel service (1 primary + 2 replicas + 3 sentinels,
``tests/support/sentinels.py``): every async session operation runs on a ``redis.asyncio``
pool of the primary in the loop's own thread (no hop), one pool per loop, closed with
it; and under failovers the async path keeps the sync path's promises
(``test_sentinel_failover.py``): ``SENTINEL FAILOVER`` fails and loses no save (the async
pools pause on ``+selected-slave`` and follow ``+switch-master`` with the sync ones), a
SIGKILL of the primary errs only with ``SessionStoreUnavailable`` for a bounded time, then
saves resume in the same process and loop.

The failover tests print their figures (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.topology import async_clients as aio
from cache_sessions.topology import follower as followers
from cache_sessions.topology import server_facts as facts
from tests.support import sentinels
from tests.support.async_load import AsyncLoad, first_operations, native_only, runs_in_threads
from tests.support.async_load import stored_session as stored_data
from tests.support.failover import store_on
from tests.support.fault_servers import crash, wait_for
from tests.support.redis_stats import CountingSentinelConnection, sync_io_threads

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = sentinels.LOCMEM
USER = {"_auth_user_id": "7", "cart": [1, 2, 3]}
DB = 14  # this module's Redis DB on the group (django-redis keeps one pool per URL: a DB no other test uses)


@pytest.fixture(scope="module")
def group() -> sentinels.SentinelGroup:
    return sentinels.group()


def caches(group: sentinels.SentinelGroup, use_hash: bool) -> dict[str, Any]:
    """``sessions`` on the service (counting round trips), and ``check-<port>`` on each data node."""
    pool_kwargs = {"connection_class": CountingSentinelConnection}
    configs = {
        "default": LOCMEM,
        "sessions": sentinels.alias(group, DB, use_hash, CONNECTION_POOL_KWARGS=pool_kwargs),
    }
    for server in group.data:
        configs[f"check-{server.port}"] = sentinels.direct(server, DB, use_hash)
    return configs


def flush(group: sentinels.SentinelGroup) -> None:
    for server in group.data:
        if server.process is not None and group.role(server) == "master":
            Redis(port=server.port, db=DB).flushdb()


@pytest.fixture(params=[False, True], ids=["string", "hash"])
def mode(request: pytest.FixtureRequest, group: sentinels.SentinelGroup) -> Iterator[bool]:
    with override_settings(CACHES=caches(group, request.param)):
        yield request.param
    flush(group)


async def stored_session(data: dict[str, Any] = USER) -> str:
    return await stored_data(data)


async def test_each_operation_is_native_and_one_round_trip(mode):
    key = await stored_session()
    session_to_save = SessionStore(key)
    await session_to_save.aset("n", 1)
    await SessionStore().adelete("z" * 32)
    steps = {
        "load": lambda: SessionStore(key).aload(),
        "exists": lambda: SessionStore().aexists(key),
        "save": lambda: session_to_save.asave(),
        "create": lambda: SessionStore().acreate(),
        "delete": lambda: SessionStore().adelete(key),
    }
    for name, step in steps.items():
        with native_only() as sent:
            await step()
        assert sent.round_trips == 1, name


@pytest.mark.parametrize("user_sessions", [False, True], ids=["", "user-sessions"])
async def test_the_first_operations_of_a_process_do_no_sync_io(group, mode, user_sessions):
    """Nothing learnt of the primary yet: the first create, save and load ask the sentinels,
    and learn the server's facts, on asyncio in the loop's thread; no sync connection
    connects or sends from it (the follower's threads listen on their own)."""
    configs = caches(group, mode)
    configs["sessions"]["OPTIONS"]["USER_SESSIONS"] = user_sessions
    with override_settings(CACHES=configs):
        facts.forget()
        with sync_io_threads() as sync_io, native_only() as sent:
            await first_operations(USER)
        assert sync_io[threading.get_ident()] == 0, "a sync connection connected or sent from the loop's thread"
        assert sent.commands["config"] == (1 if mode or user_sessions else 0)


async def test_fifty_concurrent_tasks(mode):
    async def request(n: int) -> bool:
        key = await stored_session({**USER, "n": n})
        session = SessionStore(key)
        await session.aset("n", n + 1)
        await session.asave()
        return await SessionStore(key).aload() == {**USER, "n": n + 1}

    with native_only():
        assert await asyncio.gather(*(request(n) for n in range(50))) == [True] * 50


def test_two_asyncio_runs_in_a_row_and_loops_in_threads(mode):
    async def round_trip() -> dict[str, Any]:
        key = await stored_session()
        return await SessionStore(key).aload()

    with native_only():
        assert asyncio.run(round_trip()) == USER
        assert asyncio.run(round_trip()) == USER  # not "Event loop is closed": a pool per loop
    assert not aio._clients  # both loops closed, their pools (and the sentinels' clients) with them
    runs = runs_in_threads(round_trip)
    assert runs.errors == []
    assert runs.results == [USER] * 4
    assert runs.sent.round_trips == runs.sent.asyncio > 0
    assert runs.sent.threads <= runs.thread_ids  # each loop from its own thread


# Failovers under async save loops -------------------------------------------------


async def start_load(sessions: int = 100) -> AsyncLoad:
    keys = [await stored_session({"n": 0}) for _ in range(sessions)]
    return AsyncLoad(keys, tasks=10, acked={key: (0, 0.0) for key in keys})


def lost_on(server: Any, load: AsyncLoad) -> list[str]:
    """Sessions whose last acknowledged save ``server`` (the new primary) does not hold."""
    store = store_on(f"check-{server.port}")
    return [key for key, (n, _) in load.acked.items() if (store(key).get("n") or -1) < n]


@pytest.mark.parametrize(
    ("use_hash", "leader"),
    [(False, 0), (True, 1), (True, 2)],  # each sentinel leads once (the sync test runs every pair)
    ids=["string-first", "hash-middle", "hash-last"],
)
def test_a_planned_failover_fails_no_async_save_and_loses_none(group, use_hash, leader):
    """SENTINEL FAILOVER sent to one sentinel of the group while async tasks save: the loop's
    pool pauses while the replica is promoted and writes to it after the switch, whichever
    sentinel leads (the others announce the switch before the leader has reconfigured the
    second replica)."""
    group.ready()
    old = group.primary()
    with override_settings(CACHES=caches(group, use_hash)):

        def failover() -> None:
            group.sentinel(leader).execute_command("SENTINEL", "FAILOVER", sentinels.SERVICE)
            wait_for(lambda: group.failed_over(old), timeout=30, what="the failover's end")

        async def scenario() -> tuple[AsyncLoad, list[str], Any]:
            load = await start_load()
            with native_only() as sent:
                await load.run(failover, after=1.0)
                lost = await load.lost()
            return load, lost, sent

        load, lost, sent = asyncio.run(scenario())
        new = group.primary()
        lost_at_the_end = lost_on(new, load)
    sentinels.follow(old, new)  # Sentinel would demote it ~10 s later: spare the next test the wait
    flush(group)
    saves = sum(n for n, _ in load.acked.values())
    print(
        f"\nSENTINEL FAILOVER to sentinel {leader}, async ({'hash' if use_hash else 'string'}): {saves} saves, "
        f"{len(load.failures)} failed, {len(lost)} lost, longest without a save {load.longest_gap:.2f} s"
    )
    assert [repr(exc) for _, _, exc in load.failures] == []
    assert lost == [] and lost_at_the_end == []
    assert sent.ports[new.port] > 0 and sent.ports[old.port] > 0  # written before, then after the switch
    assert load.longest_gap < followers.PAUSE_SECONDS + 1.0


def test_primary_killed_errs_for_a_bounded_time_then_async_saves_resume(group):
    group.ready()
    old = group.primary()
    with override_settings(CACHES=caches(group, use_hash=True)):

        def kill() -> None:
            crash(old)
            wait_for(lambda: group.primary() is not old, timeout=20, what="a replica promoted")
            wait_for(lambda: group.role(group.primary()) == "master", timeout=20, what="the promotion")

        async def scenario() -> tuple[AsyncLoad, list[str]]:
            load = await start_load()
            with native_only():
                await load.run(kill, after=1.5)
                return load, await load.lost()

        try:
            load, lost = asyncio.run(scenario())
        finally:
            new = group.primary()
            sentinels.restart_as_replica(old, new)
        lost_at_the_end = lost_on(new, load)
    flush(group)
    failures = [exc for _, _, exc in load.failures]
    first, last = (load.failures[0][0], load.failures[-1][1]) if failures else (0.0, 0.0)
    saves = sum(n for n, _ in load.acked.values())
    print(
        f"\nSIGKILL of the primary, async: {saves} saves, {len(failures)} failed (error window "
        f"{last - first:.2f} s), {len(lost)} lost, longest without a save {load.longest_gap:.2f} s"
    )
    assert all(isinstance(exc, SessionStoreUnavailable) for exc in failures), failures[:3]
    assert failures and last - first < 8.0  # as the sync path: until the sentinels agree and promote
    assert lost == [] and lost_at_the_end == []
    assert load.longest_gap < 10.0 and saves > 200  # saves went on, no restart


async def test_a_pool_left_on_a_replica_retries_on_the_primary(group):
    """A loop's pool that missed a switch (here: pointed at a replica by hand) gets READONLY
    for a write, asks the sentinels, and the retry writes to the primary: the save succeeds
    and is on the primary, never on the replica."""
    group.ready()
    with override_settings(CACHES=caches(group, use_hash=False)):
        key = await stored_session()
        pool = SessionStore()._storage.aredis(SessionStore()._storage.redis()).connection_pool
        primary, replica = group.primary(), group.replica()
        replicas = len(group.data) - 1
        with Redis(port=primary.port) as admin:  # on the replicas before the load reads it there
            assert admin.wait(replicas, 5000) == replicas
        await pool._use(("127.0.0.1", replica.port))  # as if the primary had moved there unseen
        session = SessionStore(key)
        await session.aset("n", 1)  # the load is served by the replica (it has the session)
        with native_only() as sent:
            await session.asave()
        on_primary = store_on(f"check-{primary.port}")(key).get("n")
    flush(group)
    assert on_primary == 1
    assert sent.commands["set"] == 2  # refused by the replica, then written to the primary...
    assert sent.ports[replica.port] == 1 and sent.ports[primary.port] >= 1  # ...on a new connection
    assert pool.master_address == ("127.0.0.1", primary.port)


async def test_django_redis_stock_sentinel_client_is_native_too(group):
    """django-redis's own Sentinel client and factory (no follower): the asyncio pool asks
    the sentinels itself."""
    configs = caches(group, use_hash=True)
    configs["sessions"]["OPTIONS"].update(sentinels.STOCK)
    with override_settings(CACHES=configs):
        await stored_session()  # connected, scripts loaded
        with native_only():
            key = await stored_session()
            assert await SessionStore(key).aload() == USER
    flush(group)


async def test_the_loops_pool_has_the_alias_settings_and_min_replicas_ack_is_native(group):
    """The asyncio pool takes the sync pool's settings (DB, timeouts, the connection class's
    twin); MIN_REPLICAS_ACK's WAIT goes in the write's round trip, on asyncio too."""
    group.ready()
    configs = caches(group, use_hash=True)
    configs["sessions"]["OPTIONS"].update(MIN_REPLICAS_ACK=1)
    with override_settings(CACHES=configs):
        await stored_session()  # connected, scripts loaded
        storage = SessionStore()._storage
        pool = storage.aredis(storage.redis()).connection_pool
        with native_only() as sent:
            await stored_session()
    flush(group)
    assert sent.round_trips == 1 and sent.commands["wait"] == 1  # the save and its WAIT, one round trip
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_timeout"]) == (DB, 1)  # django-redis's pool of this URL: SOCKET_TIMEOUT 1
    assert pool.connection_class is CountingSentinelConnection.async_connection_class


async def test_the_loops_pool_waits_out_a_pause_then_takes_the_switch(group):
    """The follower acts on the sync pool; a loop's pool of it waits while it is paused
    (``+selected-slave``) and connects to the primary ``+switch-master`` names, not to the
    one it knew; an in-use connection to the old primary is reconnected when next handed out."""
    from cache_sessions.topology.async_sentinel import PrimaryPool
    from tests.support.servers import standalone
    from tests.test_sentinel import private_pool

    pool = private_pool(group, "async-service")
    primary = PrimaryPool(pool)
    await primary._use(("127.0.0.1", group.primary().port))
    client = AsyncRedis(connection_pool=primary)
    assert await client.ping()
    in_use = await primary.get_connection()
    follower = pool.follower
    follower.handle("+selected-slave", "slave 127.0.0.1:2 127.0.0.1 2 @ async-service 127.0.0.1 1")
    new = standalone().port
    switch = ("+switch-master", f"async-service 127.0.0.1 {group.primary().port} 127.0.0.1 {new}")
    threading.Timer(0.2, follower.handle, switch).start()
    started = time.monotonic()
    assert await client.ping()
    waited = time.monotonic() - started
    await primary.release(in_use)
    again = await primary.get_connection()
    assert 0.15 < waited < 1.0  # paused until the switch, not for the whole pause
    assert primary.master_address == ("127.0.0.1", new)
    assert (again.host, again.port) == ("127.0.0.1", new)  # the connection of the old primary, reconnected
    await primary.release(again)
    await client.aclose(close_connection_pool=True)
    pool.disconnect()
