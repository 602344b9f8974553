"""Pipelined calls under a paused server: retried whole, then reported; never an empty retry.

The server is real and really paused (``CLIENT PAUSE``): the connection class of the
alias sends the pause on a control connection just before the next pipeline goes out,
so the pause hits exactly the pipelined step (a logout's delete + record removal, a
listing's liveness checks, a revoke's deletions). ``SOCKET_TIMEOUT`` 0.2 s and ``RETRY``
2: a pause of 2 s outlasts every attempt (a 503, the session untouched; the test then
ends the pause); one of 0.3 s ends before the last attempt (the operation done).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth import logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from redis.asyncio.connection import Connection as AsyncConnection
from redis.connection import Connection

from cache_sessions import users
from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.testing import RedisServer
from tests.support.redis_stats import _command_names

pytestmark = pytest.mark.django_db

OUTLASTS_EVERY_ATTEMPT = 2000  # ms: 3 attempts of 0.2 s, backoff 50-100 ms then 100-200 ms: ~0.9 s
ENDS_BEFORE_THE_LAST = 300
WRITES, ALL = "WRITE", "ALL"


class Pause:
    """Pause the server just before the next pipeline: its writes (a logout, a revoke: then
    CLIENT UNPAUSE ends it early), or every command (a listing only reads)."""

    url = ""
    armed: tuple[int, str] | None = None  # (milliseconds, "WRITE" or "ALL")
    lock = threading.Lock()

    @classmethod
    def before(cls, command: Any) -> None:
        if cls.armed is None or _commands(command) < 2:
            return
        with cls.lock:
            armed, cls.armed = cls.armed, None
        if armed is not None:
            redis.Redis.from_url(cls.url).execute_command("CLIENT", "PAUSE", *armed)


def _commands(packed: Any) -> int:
    """How many commands one socket write carries (a pipeline: several)."""
    chunks = [packed] if isinstance(packed, (bytes, str)) else packed
    return len(_command_names([chunk.encode() if isinstance(chunk, str) else chunk for chunk in chunks]))


class AsyncPausingConnection(AsyncConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Pause.before(command)
        await super().send_packed_command(command, check_health)


class PausingConnection(Connection):
    async_connection_class = AsyncPausingConnection

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Pause.before(command)
        super().send_packed_command(command, check_health)


def log_in(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import login

    login(request, User.objects.get(username="alice"))
    return HttpResponse("ok")


def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


async def alog_out(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import alogout

    await alogout(request)
    return HttpResponse("bye")


urlpatterns = [path("login", log_in), path("logout", log_out), path("alogout", alog_out)]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        Pause.url = started.url
        yield started


@pytest.fixture(params=[True, False], ids=["hash", "string"])
def site(request: pytest.FixtureRequest, server: RedisServer) -> Iterator[redis.Redis]:
    options = {
        "USE_HASH": request.param,
        "USER_SESSIONS": True,
        "SOCKET_TIMEOUT": 0.2,
        "RETRY": 2,
        "CONNECTION_POOL_KWARGS": {"connection_class": PausingConnection},
    }
    config = {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": server.url, "OPTIONS": options}
    middleware = [
        "cache_sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    control = redis.Redis.from_url(server.url)
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "sessions": config},
        MIDDLEWARE=middleware,
        ROOT_URLCONF=__name__,
    ):
        User.objects.create_user("alice")
        yield control
        Pause.armed = None
        control.execute_command("CLIENT", "UNPAUSE")  # (under a pause of every command: once it ends)
        control.flushall()


def logged_in() -> tuple[Client, str]:
    client = Client(raise_request_exception=False)
    assert client.get("/login").status_code == 200
    return client, client.cookies["sessionid"].value


def alive(key: str) -> bool:
    return SessionStore().exists(key)


def consistent(key: str) -> bool:
    """After an operation that timed out, its outcome is unknown (the server may run what it
    received once the pause ends), but never half done: the session and its record agree."""
    listed = len(users.user_sessions(User.objects.get(username="alice")))
    return listed == (1 if alive(key) else 0)


@pytest.mark.parametrize("view", ["/logout", "/alogout"])
def test_a_logout_outlasted_by_a_pause_is_a_503(site, view):
    client, key = logged_in()
    Pause.armed = (OUTLASTS_EVERY_ATTEMPT, WRITES)
    assert client.get(view).status_code == 503  # before the fix: ValueError, a 500
    site.execute_command("CLIENT", "UNPAUSE")
    assert consistent(key)


@pytest.mark.parametrize("view", ["/logout", "/alogout"])
def test_a_logout_retried_after_a_short_pause_really_logs_out(site, view):
    client, key = logged_in()
    Pause.armed = (ENDS_BEFORE_THE_LAST, WRITES)
    assert client.get(view).status_code == 200  # before the fix: ValueError, and still logged in
    assert not alive(key)
    assert users.user_sessions(User.objects.get(username="alice")) == []  # and its record went with it


@pytest.mark.django_db(transaction=True)
async def test_an_async_logout_retried_after_a_short_pause_really_logs_out(site):
    client = AsyncClient(raise_request_exception=False)
    assert (await client.get("/login")).status_code == 200
    key = client.cookies["sessionid"].value
    Pause.armed = (ENDS_BEFORE_THE_LAST, WRITES)
    assert (await client.get("/alogout")).status_code == 200
    assert not await SessionStore().aexists(key)


def test_listing_under_a_pause(site):
    alice = User.objects.get(username="alice")
    for _ in range(2):
        logged_in()
    Pause.armed = (OUTLASTS_EVERY_ATTEMPT, ALL)
    with pytest.raises(SessionStoreUnavailable):
        users.user_sessions(alice)  # the liveness checks of both sessions: one pipeline
    site.ping()  # (answered once the pause is over)
    Pause.armed = (ENDS_BEFORE_THE_LAST, ALL)
    assert len(users.user_sessions(alice)) == 2


def test_revoking_under_a_pause(site):
    alice = User.objects.get(username="alice")
    keys = [logged_in()[1] for _ in range(2)]
    Pause.armed = (OUTLASTS_EVERY_ATTEMPT, WRITES)
    with pytest.raises(SessionStoreUnavailable):
        users.revoke_all_sessions(alice)  # the deletions and the record removal: one pipeline
    site.execute_command("CLIENT", "UNPAUSE")
    assert len(users.user_sessions(alice)) == sum(alive(key) for key in keys)
    keys += [logged_in()[1] for _ in range(2)]
    Pause.armed = (ENDS_BEFORE_THE_LAST, WRITES)
    users.revoke_all_sessions(alice)
    assert not any(alive(key) for key in keys)
    assert users.user_sessions(alice) == []


@pytest.mark.django_db(transaction=True)
async def test_async_listing_and_revoking_under_a_pause(site):
    alice = await User.objects.aget(username="alice")
    keys = []
    for _ in range(2):
        client = AsyncClient(raise_request_exception=False)
        await client.get("/login")
        keys.append(client.cookies["sessionid"].value)
    Pause.armed = (ENDS_BEFORE_THE_LAST, ALL)
    assert len(await users.auser_sessions(alice)) == 2
    Pause.armed = (OUTLASTS_EVERY_ATTEMPT, WRITES)
    with pytest.raises(SessionStoreUnavailable):
        await users.arevoke_all_sessions(alice)
    site.execute_command("CLIENT", "UNPAUSE")
    Pause.armed = (ENDS_BEFORE_THE_LAST, WRITES)
    await users.arevoke_all_sessions(alice)
    assert not any([await SessionStore().aexists(key) for key in keys])
    assert await users.auser_sessions(alice) == []
