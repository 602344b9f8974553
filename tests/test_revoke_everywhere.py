""" "Log out everywhere" reaches every session, whatever way it came to exist: a login,
``cycle_key``, a session older than USER_SESSIONS (used again, or reached by the
backfill), sync and async, on every topology (sessions moved from MIGRATE_FROM:
``test_revoke_moved.py``). Each ends with ``revoke_all_sessions`` and the session no
longer loading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import alogin, get_user_model, login, update_session_auth_hash
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from cache_sessions import users
from cache_sessions.backend import SessionStore
from tests.support.configs import CONFIGS, HASH, STRING, _config
from tests.support.partitions import raw

pytestmark = pytest.mark.django_db

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
OURS = "cache_sessions.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def log_in(request: HttpRequest) -> HttpResponse:
    login(request, User.objects.get(username="alice"))
    return HttpResponse("ok")


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None})


async def awhoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return JsonResponse({"user": user.username if user.is_authenticated else None})


def new_password(request: HttpRequest) -> HttpResponse:
    update_session_auth_hash(request, request.user)  # cycle_key, as a password change does
    return HttpResponse("ok")


async def alog_in(request: HttpRequest) -> HttpResponse:
    await alogin(request, await User.objects.aget(username="alice"))
    return HttpResponse("ok")


def log_out_others(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ended": users.revoke_other_sessions(request)})


urlpatterns = [
    path("login", log_in),
    path("alogin", alog_in),
    path("whoami", whoami),
    path("awhoami", awhoami),
    path("password", new_password),
    path("others", log_out_others),
]

# Both modes on one server, and on every other topology of tests/support/configs.py.
TOPOLOGIES = {
    "string": _config(13, **STRING),
    "hash": _config(14, **HASH),
    **{name: CONFIGS[name] for name in CONFIGS if name.split("-", 1)[1] in ("cluster", "sentinel", "partitioned")},
}


def indexed(config: dict[str, Any], on: bool = True, **more: Any) -> dict[str, Any]:
    return {**config, "OPTIONS": {**config["OPTIONS"], "USER_SESSIONS": on, **more}}


@pytest.fixture(params=sorted(TOPOLOGIES))
def config(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    with override_settings(CACHES={"default": LOCMEM, "sessions": TOPOLOGIES[request.param]}, ROOT_URLCONF=__name__):
        get_user_model().objects.create_user("alice", password="x")
        yield TOPOLOGIES[request.param]
        raw("sessions").flushdb()


def site(config: dict[str, Any], on: bool = True, middleware: str = OURS, **more: Any) -> Any:
    return override_settings(
        CACHES={"default": LOCMEM, "sessions": indexed(config, on, **more)}, MIDDLEWARE=[middleware, AUTH]
    )


def alice() -> User:
    return User.objects.get(username="alice")


def logged_in(url: str = "/login") -> tuple[Client, str]:
    client = Client()
    assert client.get(url).status_code == 200
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def gone(*keys: str) -> bool:
    return not any(SessionStore().exists(key) for key in keys)


def test_a_login_and_a_cycle_key(config):
    with site(config):
        client, first = logged_in()
        assert client.get("/password").status_code == 200
        second = client.cookies[settings.SESSION_COOKIE_NAME].value
        assert second != first and gone(first)
        assert users.revoke_all_sessions(alice()) == 1
        assert gone(second) and client.get("/whoami").json() == {"user": None}


@pytest.mark.parametrize("middleware", [OURS, DJANGOS])
def test_a_session_older_than_the_option_is_indexed_when_used_again(config, middleware):
    with site(config, on=False, middleware=middleware):
        client, key = logged_in()
    with site(config, middleware=middleware):
        assert users.revoke_all_sessions(alice()) == 0  # not in the index yet...
        assert client.get("/whoami").json() == {"user": "alice"}  # ...until this request
        assert users.revoke_all_sessions(alice()) == 1
        assert gone(key) and client.get("/whoami").json() == {"user": None}


@pytest.mark.django_db(transaction=True)
async def test_a_session_older_than_the_option_is_indexed_by_an_async_request(config):
    from asgiref.sync import sync_to_async

    with site(config, on=False):
        client = AsyncClient()
        assert (await client.get("/alogin")).status_code == 200
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
    with site(config):
        assert (await client.get("/awhoami")).json() == {"user": "alice"}
        assert await users.arevoke_all_sessions(await sync_to_async(alice)()) == 1
        assert not await SessionStore().aexists(key)
        assert (await client.get("/awhoami")).json() == {"user": None}


def backfill(*args: str) -> str:
    out = StringIO()
    call_command("usersessions", "--backfill", *args, stdout=out)
    return out.getvalue()


def test_the_backfill_indexes_sessions_nobody_used_since(config):
    with site(config, on=False):
        clients = [logged_in() for _ in range(3)]
        anonymous = Client()
        anonymous.get("/whoami")
    with site(config):
        assert users.revoke_all_sessions(alice()) == 0
        out = backfill()
        assert "3 logged in, 3 indexed" in out and out.rstrip().endswith(".")
        assert "0 indexed" in backfill()  # a second run: every one has its record
        assert users.revoke_all_sessions(alice()) == 3
        assert gone(*(key for _, key in clients))


def test_the_backfill_is_resumable_and_bounded(config):
    with site(config, on=False):
        keys = [logged_in()[1] for _ in range(12)]
    with site(config):
        cursor, runs = "0:0", 0
        while True:  # one SCAN page per run, a handful of keys or buckets each
            out = backfill("--batch", "2", "--max-seconds", "0", "--cursor", cursor)
            runs += 1
            found = re.search(r"go on with --cursor (\S+)", out)
            if found is None:
                assert "Backfill finished" in out
                break
            cursor = found.group(1)
            assert runs < 500
        assert runs > 1
        assert users.revoke_all_sessions(alice()) == 12
        assert gone(*keys)


def test_a_backfilled_session_is_kept_by_log_out_other_devices_and_rewritten_when_used(config):
    with site(config, on=False):
        (laptop, laptop_key), (_, phone_key) = logged_in(), logged_in()
    with site(config, USER_SESSION_METADATA=True):
        backfill()
        listed = users.user_sessions(alice())
        assert len(listed) == 2 and all(s.user_agent is None for s in listed)  # the backfill knows no metadata
        assert laptop.get("/others").json() == {"ended": 1}  # the laptop's own backfilled record is its own
        assert gone(phone_key) and not gone(laptop_key)
        [listed] = users.user_sessions(alice(), current=laptop_key)
        assert listed.current and listed.last_seen is not None  # its own record replaced the backfilled one


def test_the_backfill_leaves_records_of_indexed_sessions_alone(config):
    with site(config, USER_SESSION_METADATA=True):
        logged_in()
        [before] = users.user_sessions(alice())
        assert "0 indexed" in backfill()
        assert users.user_sessions(alice()) == [before]  # its metadata kept
