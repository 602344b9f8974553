"""When Redis cannot serve sessions: a 503 with Retry-After, or (opt-in) a read-only
empty session for requests that only read; never a silent logout.

The outage is real: the test's own redis-server is frozen with SIGSTOP (connections
are accepted by the kernel, nothing answers: every command times out) and thawed
with SIGCONT, with its data intact.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.testing import RedisServer

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
SESSION_MIDDLEWARE = "cache_sessions.middleware.SessionMiddleware"


def show(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"n": request.session.get("n"), "user": request.user.is_authenticated})


def count(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JsonResponse({"n": request.session["n"]})


def count_then_fail(request: HttpRequest) -> HttpResponse:
    """Loads fine; Redis goes away before the save at the end of the request."""
    request.session["n"] = request.session.get("n", 0) + 1
    SERVER.freeze()
    return HttpResponse("saved?")


urlpatterns = [path("show", show), path("count", count), path("count-then-fail", count_then_fail)]


class FreezableServer:
    def __init__(self) -> None:
        self.server = RedisServer().start()

    def freeze(self) -> None:
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()


SERVER: FreezableServer


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[FreezableServer]:
    global SERVER
    SERVER = FreezableServer()
    yield SERVER
    SERVER.thaw()
    SERVER.server.stop()


def site(**options: object) -> override_settings:
    alias = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": f"{SERVER.server.url}/0",
        "OPTIONS": {"SOCKET_TIMEOUT": 0.2, "SOCKET_CONNECT_TIMEOUT": 0.2, "RETRY": 0, **options},
    }
    middleware = [SESSION_MIDDLEWARE, "django.contrib.auth.middleware.AuthenticationMiddleware"]
    return override_settings(
        CACHES={"default": LOCMEM, "sessions": alias}, MIDDLEWARE=middleware, ROOT_URLCONF=__name__
    )


def logged_visitor() -> Client:
    client = Client(raise_request_exception=False)
    assert client.get("/count").json() == {"n": 1}
    return client


@pytest.mark.parametrize("use_hash", [True, False], ids=["hash", "string"])
def test_an_outage_on_read_is_a_503_and_the_cookie_stays(use_hash):
    with site(USE_HASH=use_hash):
        client = logged_visitor()
        with SERVER.frozen():
            response = client.get("/show")
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert "no-store" in response["Cache-Control"]
        assert settings.SESSION_COOKIE_NAME not in response.cookies  # not deleted, not replaced
        assert client.get("/show").json()["n"] == 1  # Redis is back: so is the session


def test_an_outage_during_the_save_is_a_503_and_nothing_is_lost():
    with site(RETRY_AFTER=30):
        client = logged_visitor()
        try:
            response = client.get("/count-then-fail")
        finally:
            SERVER.thaw()
        assert response.status_code == 503
        assert response["Retry-After"] == "30"
        # A timeout means "unknown", not "not done": the SET waited in the frozen server's
        # socket buffer and ran when it thawed. Either way the session is there.
        assert client.get("/show").json()["n"] in (1, 2)


def test_degraded_reads_serve_an_empty_read_only_session():
    with site(DEGRADED_READS=True):
        client = logged_visitor()
        with SERVER.frozen():
            page = client.get("/show")
            written = client.get("/count")  # a GET that writes: served, but nothing is saved
            posted = client.post("/count")  # a request that may change state: 503
        assert page.status_code == 200
        assert page.json() == {"n": None, "user": False}
        assert settings.SESSION_COOKIE_NAME not in page.cookies
        assert "no-store" in page["Cache-Control"]
        assert written.status_code == 200
        assert settings.SESSION_COOKIE_NAME not in written.cookies
        assert posted.status_code == 503
        assert client.get("/show").json() == {"n": 1, "user": False}  # the real session, untouched


def test_a_degraded_session_refuses_an_explicit_save():
    from cache_sessions.backend import SessionStore

    with site(DEGRADED_READS=True):
        session = SessionStore()
        session["n"] = 1
        session.save()
        degraded = SessionStore(session.session_key)
        degraded.degraded_reads = True
        with SERVER.frozen():
            assert degraded.load() == {}
        degraded["n"] = 99
        with pytest.raises(SessionStoreUnavailable):
            degraded.save()  # Redis is back, yet the stand-in must never replace the real session
        assert SessionStore(session.session_key)["n"] == 1


def test_with_debug_the_technical_page_is_kept_as_a_503():
    with site(), override_settings(DEBUG=True):
        client = logged_visitor()
        with SERVER.frozen():
            response = client.get("/show")
        assert response.status_code == 503
        assert b"SessionStoreUnavailable" in response.content


def test_django_middleware_gives_a_500_for_comparison():
    django_middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with site(), override_settings(MIDDLEWARE=django_middleware):
        client = logged_visitor()
        with SERVER.frozen():
            response = client.get("/count")
        assert response.status_code == 500
        assert client.get("/show").json()["n"] == 1
