"""The engine behind Django's SessionMiddleware, as a request sees it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from cache_sessions.checks.middleware import check_session_middleware
from cache_sessions.middleware import SessionMiddleware as CacheSessionMiddleware

pytestmark = pytest.mark.django_db(databases=[])


def run(view, cookie: str | None = None) -> tuple[HttpRequest, HttpResponse]:
    request = RequestFactory().get("/")
    if cookie:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = cookie

    def get_response(req: HttpRequest) -> HttpResponse:
        view(req)
        return HttpResponse("ok")

    return request, SessionMiddleware(get_response)(request)


def test_first_write_sets_the_cookie_and_stores_the_session(SessionStore, redis):
    request, response = run(lambda req: req.session.__setitem__("n", 1))
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value == request.session.session_key
    assert SessionStore(cookie.value)["n"] == 1


def test_a_later_request_reads_and_updates(SessionStore, redis):
    _, first = run(lambda req: req.session.__setitem__("n", 1))
    key = first.cookies[settings.SESSION_COOKIE_NAME].value

    def bump(req):
        req.session["n"] += 1

    run(bump, key)
    assert SessionStore(key)["n"] == 2


def test_read_only_request_does_not_write(SessionStore, redis):
    _, first = run(lambda req: req.session.__setitem__("n", 1))
    key = first.cookies[settings.SESSION_COOKIE_NAME].value
    redis.config_resetstat()
    _, response = run(lambda req: req.session.get("n"), key)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert "cmdstat_set" not in redis.info("commandstats")


def test_session_deleted_during_the_request_is_interrupted_not_resurrected(SessionStore, redis):
    _, first = run(lambda req: req.session.__setitem__("n", 1))
    key = first.cookies[settings.SESSION_COOKIE_NAME].value

    def logout_elsewhere(req):
        req.session["n"] += 1
        SessionStore(key).delete()

    with pytest.raises(SessionInterrupted):
        run(logout_elsewhere, key)
    assert not SessionStore().exists(key)


def test_flushed_session_deletes_the_cookie(SessionStore, redis):
    _, first = run(lambda req: req.session.__setitem__("n", 1))
    key = first.cookies[settings.SESSION_COOKIE_NAME].value
    _, response = run(lambda req: req.session.flush(), key)
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert not SessionStore().exists(key)


@pytest.mark.parametrize("cookie", ["garbage!", "x" * 300, "a" * 32])
def test_bad_or_unknown_cookie_gets_a_fresh_session(SessionStore, redis, cookie):
    _, response = run(lambda req: req.session.__setitem__("n", 1), cookie)
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != cookie
    assert SessionStore(new_key)["n"] == 1


# Two session middlewares: each saves the session (cache_sessions.E006) --------------

OURS = "cache_sessions.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


class HeaderSessionMiddleware(SessionMiddleware):
    """A third-party session middleware: a subclass of Django's, as they usually are."""


class OursExtended(CacheSessionMiddleware):
    """A site's own subclass of ours: still the one session middleware."""


@pytest.mark.parametrize(
    ("middleware", "reported"),
    [
        ([OURS, AUTH], False),
        ([DJANGOS, AUTH], False),
        ([f"{__name__}.OursExtended", AUTH], False),
        ([DJANGOS, OURS, AUTH], True),
        ([OURS, AUTH, DJANGOS], True),
        ([OURS, f"{__name__}.HeaderSessionMiddleware"], True),
        ([OURS, OURS], True),
        ([OURS, "no.such.Middleware"], False),  # Django reports a bad path itself; the check does not crash
    ],
)
def test_a_second_session_middleware_is_reported(middleware, reported):
    with override_settings(MIDDLEWARE=middleware):
        messages = check_session_middleware()
    assert [message.id for message in messages] == (["cache_sessions.E006"] if reported else [])
    if reported:
        assert messages[0].is_serious()
        assert "twice" in messages[0].msg and OURS in messages[0].hint


def test_manage_py_check_fails_with_two_session_middlewares():
    with override_settings(MIDDLEWARE=[DJANGOS, OURS]), pytest.raises(SystemCheckError, match="E006"):
        call_command("check", stdout=StringIO(), stderr=StringIO())
