"""Native asyncio: the async half of the contract runs on ``redis.asyncio`` in the
event loop's own thread (no hop), one round trip per operation, one client per
loop, closed with its loop; a cancelled save leaves the session whole."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, override_settings
from django.urls import path

from cache_sessions import users
from cache_sessions.backend import SessionStore
from cache_sessions.storage import index as user_index
from cache_sessions.testing import RedisServer
from cache_sessions.topology import async_clients as aio
from cache_sessions.topology import server_facts as facts
from tests.support.async_load import first_operations, runs_in_threads
from tests.support.async_load import stored_session as stored_data
from tests.support.configs import HASH, STRING, _config
from tests.support.faults import FaultProxy
from tests.support.redis_stats import sent_by_clients, sync_io_threads
from tests.support.servers import field_ttls_here

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
USER = {"_auth_user_id": "7", "cart": [1, 2, 3]}


@pytest.fixture(params=[STRING, HASH], ids=["string", "hash"])
def mode(request: pytest.FixtureRequest) -> Iterator[dict[str, bool]]:
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(5, **request.param)}):
        yield request.param
        SessionStore()._storage.redis().flushdb()


async def stored_session() -> str:
    return await stored_data(USER)


async def test_async_operations_are_native_and_one_round_trip_each(mode):
    key = await stored_session()  # scripts loaded, facts known
    loop_thread = threading.get_ident()
    session_to_save = SessionStore(key)
    await session_to_save.aset("n", 1)  # loaded (one round trip) before counting
    await SessionStore().adelete("z" * 32)  # every script known to the server before counting
    steps = {
        "load": lambda: SessionStore(key).aload(),
        "exists": lambda: SessionStore().aexists(key),
        "save": lambda: save_loaded(session_to_save),
        "create": lambda: SessionStore().acreate(),
        "delete": lambda: SessionStore().adelete(key),
    }
    for name, step in steps.items():
        with sent_by_clients() as sent:
            await step()
        assert sent.round_trips == 1, name
        assert sent.asyncio == 1, f"{name} went through a sync connection"
        assert sent.threads == {loop_thread}, f"{name} hopped to another thread"


async def save_loaded(session: SessionStore) -> None:
    await session.asave()


async def test_async_contract(mode):
    key = await stored_session()
    assert await SessionStore(key).aload() == USER
    assert await SessionStore().aexists(key)
    twin = SessionStore(key)
    twin["other"] = 1
    with pytest.raises(CreateError):
        await twin.asave(must_create=True)
    stale = SessionStore(key)
    await stale.aset("n", 1)  # loads it (``aload`` alone does not fill Django's session cache)
    await SessionStore().adelete(key)
    with pytest.raises(UpdateError):
        await stale.asave()  # never resurrects a deleted session
    assert not await SessionStore().aexists(key)
    assert await SessionStore(key).aload() == {}


async def test_acycle_key_and_aflush(mode):
    key = await stored_session()
    session = SessionStore(key)
    await session.acycle_key()
    assert session.session_key != key
    assert not await SessionStore().aexists(key)
    assert await SessionStore(session.session_key).aload() == USER
    await session.aflush()
    assert session.session_key is None
    assert not await SessionStore().aexists(key)


async def test_concurrent_tasks_read_the_listpack_limit_once():
    facts.forget()
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(5, **HASH)}):
        with sent_by_clients() as sent:

            async def request(n: int) -> None:
                session = SessionStore()
                session["n"] = n
                await session.asave()

            await asyncio.gather(*(request(n) for n in range(50)))
        SessionStore()._storage.redis().flushdb()
    assert sent.commands["config"] == 1
    assert sent.threads == {threading.get_ident()}


@pytest.mark.parametrize("user_sessions", [False, True], ids=["", "user-sessions"])
async def test_the_first_operations_of_a_process_do_no_sync_io(mode, user_sessions):
    """Nothing learnt of the server yet: the first create, save and load learn what they need
    (the listpack limit, of the sessions' buckets or of the user index's, the software) on
    the loop's asyncio client, never on a sync connection or in another thread."""
    config = _config(5, **mode, USER_SESSIONS=user_sessions)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        facts.forget()
        with sync_io_threads() as sync_io, sent_by_clients() as sent:
            await first_operations(USER)
        assert sent.round_trips == sent.asyncio > 0, f"{sent.round_trips - sent.asyncio} on a sync connection"
        assert sent.threads == {threading.get_ident()}
        assert sync_io[threading.get_ident()] == 0
        assert sent.commands["config"] == (1 if mode["USE_HASH"] or user_sessions else 0)


async def test_the_first_indexed_delete_and_revoke_learn_on_asyncio(mode):
    """With USER_SESSIONS, a delete (and the per-user API) removes index records sized by
    the listpack limit: a process that has not learnt it yet learns it on asyncio too."""
    config = _config(5, **mode, USER_SESSIONS=True)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        session = SessionStore()
        session.update(USER)
        await session.asave()
        other = SessionStore()
        other.update(USER)
        await other.asave()
        loaded = SessionStore(session.session_key)
        await loaded.aload()  # indexed: its delete removes its index record too
        facts.forget()
        with sync_io_threads() as sync_io, sent_by_clients() as sent:
            await loaded.adelete()
            facts.forget()
            assert await users.arevoke_all_sessions(USER["_auth_user_id"]) == 1
            facts.forget()
            assert await users.auser_sessions(USER["_auth_user_id"]) == []
        assert sent.round_trips == sent.asyncio > 0, f"{sent.round_trips - sent.asyncio} on a sync connection"
        assert sync_io[threading.get_ident()] == 0
        assert sent.commands["config"] >= 2  # learnt anew after each forget()


def test_two_asyncio_runs_in_a_row_and_loops_in_threads(mode):
    """A redis.asyncio client is bound to its loop: each loop gets its own, closed with it."""

    async def round_trip() -> dict:
        key = await stored_session()
        return await SessionStore(key).aload()

    assert asyncio.run(round_trip()) == USER
    assert asyncio.run(round_trip()) == USER  # not "Event loop is closed"
    assert not aio._clients  # both loops closed, their clients with them

    runs = runs_in_threads(round_trip)
    assert runs.errors == []
    assert runs.results == [USER] * 4
    assert runs.sent.round_trips == runs.sent.asyncio > 0  # each loop native, from its own thread
    assert runs.sent.threads <= runs.thread_ids


def test_a_loop_closes_its_connections():
    with RedisServer() as server:
        config = {**_config(0), "LOCATION": f"{server.url}/0"}
        with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
            watcher = SessionStore()._storage.redis()
            baseline = watcher.info("clients")["connected_clients"]

            async def work() -> int:
                await asyncio.gather(*(stored_session() for _ in range(5)))
                return watcher.info("clients")["connected_clients"]

            during = asyncio.run(work())
            deadline = time.monotonic() + 5
            while (after := watcher.info("clients")["connected_clients"]) > baseline and time.monotonic() < deadline:
                time.sleep(0.01)  # the server notices closed sockets on its next event loop turn
    assert during > baseline
    assert after == baseline


@pytest.mark.parametrize("use_hash", [False, True], ids=["string", "hash"])
def test_a_save_cancelled_in_flight_is_all_or_nothing(use_hash):
    """The reply of the save is held back; the task is cancelled while it waits. The
    session is then either the old or the new one (never half-written), and the next
    call on the same loop reads correct replies (no connection left with a reply due)."""
    with RedisServer() as server, FaultProxy(server.port) as proxy:
        config = {**_config(0, USE_HASH=use_hash), "LOCATION": f"{proxy.url}/0"}
        with override_settings(CACHES={"default": LOCMEM, "sessions": config}):

            async def scenario() -> tuple[dict, dict]:
                key = await stored_session()
                session = SessionStore(key)
                await session.aset("cart", [9])
                proxy.delay_reply(("HSETEX" if field_ttls_here() else "EVALSHA") if use_hash else "SET", 2.0)
                saving = asyncio.ensure_future(session.asave())
                await asyncio.sleep(0.3)  # the save is on the wire, its reply held by the proxy
                saving.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await saving
                other = await stored_session()  # the same pool, right after the cancellation
                return await SessionStore(key).aload(), await SessionStore(other).aload()

            after, other = asyncio.run(scenario())
    assert after in (USER, {**USER, "cart": [9]})
    assert other == USER


async def test_aclear_expired_sweeps_natively():
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(5, **HASH, BUCKETS=4)}):
        storage = SessionStore()._storage
        await stored_session()
        past = int(time.time()) - 10
        for number in range(20):  # expired leftovers nobody wrote over yet
            bucket, field, _ = storage.locate(f"expired{number:024d}")
            storage.redis().hset(bucket, field, storage.codec.encode({"x": 1}, expires_at=past))
        with sent_by_clients() as sent:
            await SessionStore.aclear_expired()
        remaining = sum(storage.redis().hlen(bucket) for bucket in storage.redis().scan_iter(match=b":s1:h{*}"))
        storage.redis().flushdb()
    assert remaining == 1
    assert sent.round_trips == sent.asyncio > 0
    assert sent.threads == {threading.get_ident()}


# The middleware under ASGI: sessions loaded and saved on redis.asyncio ------------------


async def count_view(request: HttpRequest) -> HttpResponse:
    n = await request.session.aget("n", 0) + 1
    await request.session.aset("n", n)
    return JsonResponse({"n": n})


async def show_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"n": await request.session.aget("n")})


urlpatterns = [path("count", count_view), path("show", show_view)]


@pytest.mark.parametrize("middleware", ["cache_sessions", "django"])
async def test_the_async_middleware_saves_natively(mode, middleware):
    """Django's SessionMiddleware saves in a worker thread under ASGI; ours with asave()."""
    path_ = {
        "cache_sessions": "cache_sessions.middleware.SessionMiddleware",
        "django": "django.contrib.sessions.middleware.SessionMiddleware",
    }[middleware]
    with override_settings(MIDDLEWARE=[path_], ROOT_URLCONF=__name__):
        client = AsyncClient()
        for n in (1, 2):  # warm: scripts loaded, facts known, connections open
            assert (await client.get("/count")).json() == {"n": n}
        with sent_by_clients() as sent:
            response = await client.get("/count")
        assert response.json() == {"n": 3}
        assert (await client.get("/show")).json() == {"n": 3}
    if middleware == "cache_sessions":
        assert sent.round_trips == sent.asyncio == 2  # load + save, both in the loop
        assert sent.threads == {threading.get_ident()}
    else:
        assert sent.round_trips - sent.asyncio == 1  # the save, through a sync connection...
        assert len(sent.threads) == 2  # ...from a worker thread


async def test_a_last_seen_refresh_under_asgi_is_saved_natively(mode):
    """USER_SESSIONS: a request that only reads a session whose index record is due saves
    it. Under ASGI that save is asave() in the loop, like every other: no sync save(), no
    blocking Redis call on the loop's thread."""
    alias = _config(5, **mode, USER_SESSIONS=True)
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": alias},
        MIDDLEWARE=["cache_sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF=__name__,
    ):
        key = await stored_session()
        session = SessionStore(key)
        data = dict(await session.aitems())
        last_written = int(time.time()) - 901  # as if written over USER_SESSION_SEEN_EVERY ago
        mark = [last_written, last_written + 3600 + 900]  # [written, the record's expiry]
        await session._storage.aupdate(key, {**data, user_index.MARK: mark}, 3600)
        client = AsyncClient()
        client.cookies["sessionid"] = key
        with sent_by_clients() as sent:
            assert (await client.get("/show")).status_code == 200
        refreshed = dict(await SessionStore(key).aitems())
    assert refreshed[user_index.MARK][0] > last_written  # the record was rewritten
    assert sent.round_trips == sent.asyncio == 3  # load, the index record, the save: all native...
    assert sent.threads == {threading.get_ident()}  # ...and all from the loop's thread


def test_native_async_on_a_unix_socket():
    from cache_sessions.topology import async_clients as aio
    from tests.support.servers import unix_socket

    server = unix_socket()
    config = {**_config(0), "LOCATION": f"{server.url}?db=3"}
    config["OPTIONS"].pop("CONNECTION_POOL_KWARGS")  # the counting class is for TCP connections

    async def round_trip() -> tuple[dict, str]:
        key = await stored_session()
        client = aio.client_for(SessionStore()._storage.redis())
        return await SessionStore(key).aload(), client.connection_pool.connection_class.__name__

    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        loaded, kind = asyncio.run(round_trip())
        SessionStore()._storage.redis().flushdb()
    assert loaded == USER
    assert kind == "UnixDomainSocketConnection"


async def test_a_shared_read_of_a_servers_facts_keeps_each_callers_own_deadline():
    """Tasks that need the same fact share one read: it runs outside every caller's deadline and
    each waits for it within its own. A caller with a short bound gives up in time without
    cutting the read short for a caller with a long one, and a read started by a caller with no
    bound (a sweep) does not hold a bounded one past its deadline."""
    from redis.asyncio import Redis as AsyncRedis

    from cache_sessions.topology import deadline

    async def learn(record: facts.ServerFacts, client: AsyncRedis, bound: float | None) -> facts.Software:
        if bound is None:
            return await facts.asoftware(record, client)
        with deadline.within(bound + deadline.RESERVE):
            return await facts.asoftware(record, client)

    with RedisServer() as server, FaultProxy(server.port) as proxy:
        client = AsyncRedis.from_url(proxy.url)
        for first, second in ((0.1, 3.0), (None, 0.1)):
            record = facts.ServerFacts()
            proxy.delay_reply("INFO", 0.8)
            started = time.monotonic()
            one = asyncio.create_task(learn(record, client, first))
            await asyncio.sleep(0)  # the first starts the read
            two = asyncio.create_task(learn(record, client, second))
            results = await asyncio.gather(one, two, return_exceptions=True)
            if first is not None:
                assert isinstance(results[0], deadline.TimeIsUp) and results[1] is record.software is not None
            else:
                assert results[0] is record.software is not None and isinstance(results[1], deadline.TimeIsUp)
            assert time.monotonic() - started >= 0.8  # the read went on to its end
        await client.aclose()
