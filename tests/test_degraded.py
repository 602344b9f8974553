"""Every way a request can meet a store that stops answering, under WSGI and ASGI:
nothing stored changes unless the request's own write succeeded, the answer is the
page, the degraded page (200, no Set-Cookie) or a 503 with Retry-After (never a
500), and a stand-in session never replaces the real one.

The outage is real and placed exactly: a proxy in front of a real server lets
everything through except the one command the test picks (the session's load, or
its save): that command never reaches the server and its connection is cut (or,
where a test says so, hangs until the client times out). The next connection
works, which is the worst case for a stand-in session: Redis answers again by the
time the request would save it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.embedded import RedisServer
from cache_sessions.errors import SessionStoreUnavailable
from tests.faults import FaultProxy
from tests.servers import RECOMMENDED

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
USER = {"_auth_user_id": "42", "cart": [1, 2, 3]}
# What each mode sends to load a session and to save it.
LOAD = {"string": "GET", "hash": "HGET"}
SAVE = {"string": "SET", "hash": "EVALSHA"}
WRITES = ("set", "evalsha", "eval", "del", "unlink", "hset", "hdel", "expire", "getdel")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(config=RECOMMENDED) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as proxy:
        yield proxy


@pytest.fixture(params=["string", "hash"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def site(proxy: FaultProxy, mode: str, degraded_reads: bool, save_every: bool) -> override_settings:
    alias = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": f"{proxy.url}/0",
        "OPTIONS": {
            "USE_HASH": mode == "hash",
            "DEGRADED_READS": degraded_reads,
            **{"SOCKET_TIMEOUT": 0.2, "SOCKET_CONNECT_TIMEOUT": 0.2, "RETRY": 0},
        },
    }
    return override_settings(
        CACHES={"default": LOCMEM, "sessions": alias},
        SESSION_SAVE_EVERY_REQUEST=save_every,
    )


def stored_user() -> str:
    session = SessionStore()
    session.update(USER)
    session.save()
    assert session.session_key is not None
    return session.session_key


def snapshot(redis: Redis) -> dict[bytes, bytes]:
    return {key: redis.dump(key) for key in redis.scan_iter()}


# The store itself: a stand-in session writes nothing, whichever call gets to the store ----


def degraded_store(proxy: FaultProxy, mode: str, key: str, write: str) -> SessionStore:
    """The user's session as a request that only reads gets it; loaded (and so found unavailable)
    by the write itself if the write loads it, else first."""
    session = SessionStore(key)
    session.degraded_reads = True
    proxy.cut_at(LOAD[mode])
    if write not in LOADS_ITSELF:
        assert session.get("cart") is None
    return session


LOADS_ITSELF = {"save", "save-modified", "cycle_key"}
STAND_IN_WRITES = {
    "save": lambda session: session.save(),
    "save-modified": lambda session: session.update({"cart": []}) or session.save(),
    "create": lambda session: session.create(),
    "cycle_key": lambda session: session.cycle_key(),
    "flush": lambda session: session.flush(),
    "delete": lambda session: session.delete(),
}
ASYNC_STAND_IN_WRITES = {
    "save": lambda session: session.asave(),
    "save-modified": lambda session: _aupdate_then_save(session),
    "create": lambda session: session.acreate(),
    "cycle_key": lambda session: session.acycle_key(),
    "flush": lambda session: session.aflush(),
    "delete": lambda session: session.adelete(),
}


async def _aupdate_then_save(session: SessionStore) -> None:
    await session.aupdate({"cart": []})
    await session.asave()


@pytest.mark.parametrize("write", sorted(STAND_IN_WRITES))
def test_a_stand_in_never_reaches_the_store(server, proxy, mode, write):
    """The load inside the write is what fails: the write must still not be sent."""
    with site(proxy, mode, degraded_reads=True, save_every=False):
        proxy.pass_through()
        key = stored_user()
        session = degraded_store(proxy, mode, key, write)
        with pytest.raises(SessionStoreUnavailable):
            STAND_IN_WRITES[write](session)
        assert session.degraded
        proxy.pass_through()
        assert SessionStore(key).load() == USER


@pytest.mark.parametrize("write", sorted(ASYNC_STAND_IN_WRITES))
async def test_a_stand_in_never_reaches_the_store_async(server, proxy, mode, write):
    with site(proxy, mode, degraded_reads=True, save_every=False):
        proxy.pass_through()
        key = await _astored_user()
        session = degraded_store(proxy, mode, key, write)
        with pytest.raises(SessionStoreUnavailable):
            await ASYNC_STAND_IN_WRITES[write](session)
        assert session.degraded
        proxy.pass_through()
        assert await SessionStore(key).aload() == USER


async def _astored_user() -> str:
    session = SessionStore()
    await session.aupdate(USER)
    await session.asave()
    assert session.session_key is not None
    return session.session_key
