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

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.testing import RedisServer
from tests.support.faults import FaultProxy
from tests.support.servers import RECOMMENDED, hash_write

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
USER = {"_auth_user_id": "42", "cart": [1, 2, 3]}
# What each mode sends to load a session and to save it.
LOAD = {"string": "GET", "hash": "HGET"}
SAVE = {"string": "SET", "hash": hash_write()}
WRITES = ("set", "evalsha", "eval", "del", "unlink", "hset", "hsetex", "hdel", "expire", "getdel")


def reads(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"cart": request.session.get("cart")})


def writes(request: HttpRequest) -> HttpResponse:
    request.session["seen"] = 1
    return JsonResponse({"cart": request.session.get("cart")})


def never(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def areads(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"cart": await request.session.aget("cart")})


async def awrites(request: HttpRequest) -> HttpResponse:
    await request.session.aset("seen", 1)
    return JsonResponse({"cart": await request.session.aget("cart")})


async def anever(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


VIEWS = {"reads": (reads, areads), "writes": (writes, awrites), "never": (never, anever)}
urlpatterns = [path(f"sync/{name}", sync) for name, (sync, _) in VIEWS.items()]
urlpatterns += [path(f"async/{name}", async_) for name, (_, async_) in VIEWS.items()]


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
        MIDDLEWARE=["cache_sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF=__name__,
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


def request(handler: str, method: str, view: str, key: str) -> Any:
    """One request with the user's cookie, through the WSGI or the ASGI handler."""
    url = f"/{handler}/{view}"
    if handler == "sync":
        client = Client(raise_request_exception=False)
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        return getattr(client, method)(url)

    async def asgi() -> Any:
        client = AsyncClient(raise_request_exception=False)
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        return await getattr(client, method)(url)

    return asyncio.run(asgi())  # a loop of its own: the handler runs in it, as under an ASGI server


def expected_answer(degraded_reads: bool, save_every: bool, method: str, view: str, down_during: str) -> str:
    loads = view != "never" or save_every
    saves = view == "writes" or save_every
    if down_during == "load":
        if not loads:
            return "page"  # the store was never asked
        return "degraded" if degraded_reads and method == "get" else "503"
    return "503" if saves else "page"  # a save that failed is a 503, whatever the method


CELLS = [
    pytest.param(*cell, id="-".join(str(part) for part in cell))
    for cell in itertools.product(
        ["sync", "async"],
        ["degraded", "strict"],
        ["every", "modified"],
        ["get", "post"],
        ["reads", "writes", "never"],
        ["load", "save"],
    )
    if cell[3] == "get" or cell[4] == "writes"  # a POST only to write
]


@pytest.mark.parametrize(("handler", "reads_mode", "saving", "method", "view", "down_during"), CELLS)
def test_a_store_down_during_a_request(server, proxy, mode, handler, reads_mode, saving, method, view, down_during):
    degraded_reads, save_every = reads_mode == "degraded", saving == "every"
    direct = Redis(port=server.port)
    with site(proxy, mode, degraded_reads, save_every):
        proxy.pass_through()
        direct.flushdb()
        key = stored_user()
        before = snapshot(direct)
        direct.config_resetstat()
        proxy.cut_at(LOAD[mode] if down_during == "load" else SAVE[mode])
        response = request(handler, method, view, key)
        proxy.pass_through()
        assert snapshot(direct) == before
        written = [name for name in WRITES if f"cmdstat_{name}" in direct.info("commandstats")]
        assert written == []  # not even the same bytes again
        assert SessionStore(key).load() == USER
    answer = expected_answer(degraded_reads, save_every, method, view, down_during)
    assert settings.SESSION_COOKIE_NAME not in response.cookies  # neither set nor deleted
    if answer == "503":
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert "no-store" in response["Cache-Control"]
        return
    assert response.status_code == 200
    if answer == "degraded":
        assert "no-store" in response["Cache-Control"]
    if view != "never":  # an empty stand-in makes the user look logged out, for this page only
        assert response.json() == {"cart": None if answer == "degraded" else USER["cart"]}


@pytest.mark.parametrize("handler", ["sync", "async"])
def test_a_load_that_times_out_then_a_store_that_answers_again(server, proxy, mode, handler):
    """Issue 18's report: DEGRADED_READS and SESSION_SAVE_EVERY_REQUEST, a GET whose view
    never touches the session, the load at the end of the request times out, Redis
    answers the save: the degraded page, and the user's session as it was."""
    direct = Redis(port=server.port)
    with site(proxy, mode, degraded_reads=True, save_every=True):
        proxy.pass_through()
        key = stored_user()
        before = snapshot(direct)
        proxy.hang_at(LOAD[mode])
        response = request(handler, "get", "never", key)
        proxy.pass_through()
        assert proxy.hung
        assert snapshot(direct) == before
        assert SessionStore(key).load() == USER
    assert response.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert "no-store" in response["Cache-Control"]


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
