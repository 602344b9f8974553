"""The edges of sessions per user: a record that must outlive its session whatever
``set_expiry`` does (up to 2106 and past it), a revoked session that must not come back
through ``cycle_key``, and an API that says so when the index is off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth.models import User
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from cache_sessions import users
from cache_sessions.backend import SessionStore
from cache_sessions.errors import UserSessionsOff
from cache_sessions.storage import index as user_index
from cache_sessions.storage.buckets import MAX_EXPIRY
from tests.support.configs import HASH, STRING, _config
from tests.support.partitions import raw
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
MIDDLEWARE = ["cache_sessions.middleware.SessionMiddleware", "django.contrib.auth.middleware.AuthenticationMiddleware"]
DAY = 86400
USER = {"_auth_user_id": "7", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend"}


def log_in(request: HttpRequest) -> HttpResponse:
    login(request, User.objects.get(username="alice"))
    return HttpResponse("ok")


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None})


def revoked_then_password(request: HttpRequest) -> HttpResponse:
    """The session is loaded; another process revokes every session; then this request cycles the key."""
    assert request.user.is_authenticated
    users.revoke_all_sessions(request.user)
    update_session_auth_hash(request, request.user)
    return HttpResponse("not reached")


async def arevoked_then_password(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import aupdate_session_auth_hash

    user = await request.auser()
    await users.arevoke_all_sessions(user)
    await aupdate_session_auth_hash(request, user)  # acycle_key
    return HttpResponse("not reached")


urlpatterns = [
    path("login", log_in),
    path("whoami", whoami),
    path("revoked-then-password", revoked_then_password),
    path("arevoked-then-password", arevoked_then_password),
]


@pytest.fixture(params=["string", "hash"])
def site(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    mode = STRING if request.param == "string" else HASH
    config = _config(15, **mode, USER_SESSIONS=True, USER_SESSION_METADATA=True)
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": config}, MIDDLEWARE=MIDDLEWARE, ROOT_URLCONF=__name__
    ):
        User.objects.create_user("alice")
        yield config
        raw("sessions").flushdb()


def record_expiry(user_id: str, session_key: str) -> int:
    """The expiry in the header of a session's index record."""
    storage = SessionStore()._storage
    run = storage.execute(user_index.IndexEntry.of(storage, user_id).read_call())
    [(sid, _)] = user_index.records(run, time.time()).items()
    assert sid == user_index.session_id(session_key)
    position = run.index(sid)
    return int.from_bytes(run[position + 12 : position + 16], "big")


def logged_in_store(**data: Any) -> SessionStore:
    store = SessionStore()
    store.update({**USER, **data})
    store.create()
    return SessionStore(store.session_key)


# Item 5: the record outlives its session -----------------------------------------------


def test_raising_the_expiry_soon_after_login_rewrites_the_record(site):
    store = logged_in_store()
    key = store.session_key
    assert record_expiry("7", key) <= time.time() + 14 * DAY + 900 + 5  # two weeks and a period
    store.set_expiry(365 * DAY)  # a minute later, "remember me for a year": within USER_SESSION_SEEN_EVERY
    store.save()
    assert record_expiry("7", key) >= time.time() + 365 * DAY - 5  # before the fix: still two weeks
    storage = store._storage
    entry = user_index.IndexEntry.of(storage, "7")
    holder = entry.overflow if raw("sessions").exists(entry.overflow) else entry.bucket
    assert raw("sessions").ttl(holder) >= 365 * DAY - 5  # the bucket (or overflow key) lives as long


def test_an_expiry_that_stays_covered_costs_no_record_write(site):
    store = logged_in_store()
    store.set_expiry(DAY)  # shorter: the record written at login still covers it
    with sent_by_clients() as sent:
        store.save()
    assert sent.round_trips == 1  # the save alone


# Item 8: past 2106 ------------------------------------------------------------------


def test_an_expiry_past_2106_is_clamped(site):
    new = SessionStore()
    new.update(USER)
    new.set_expiry(80 * 365 * DAY)
    new.create()  # before the fix: struct.error
    assert record_expiry("7", new.session_key) == MAX_EXPIRY
    assert users.revoke_all_sessions("7") == 1
    store = logged_in_store()
    store.set_expiry(80 * 365 * DAY)
    store.save()
    assert record_expiry("7", store.session_key) == MAX_EXPIRY
    assert SessionStore(store.session_key)["_auth_user_id"] == "7"
    with sent_by_clients() as sent:
        store.save()  # the clamped record covers it: not written again at every save
    assert sent.round_trips == 1
    assert users.revoke_all_sessions("7") == 1


# Item 6: no resurrection through cycle_key -------------------------------------------


def test_a_session_revoked_before_cycle_key_is_not_carried_over(site):
    store = logged_in_store(cart=[1, 2])
    assert store["cart"] == [1, 2]  # loaded by this "request"
    assert users.revoke_all_sessions("7") == 1  # by another process, meanwhile
    with pytest.raises(SessionInterrupted):
        store.cycle_key()  # login() / update_session_auth_hash()
    assert users.user_sessions("7") == []  # before the fix: 1, the revoked session back under a new key
    assert store.session_key is None and store.is_empty()


def test_a_session_revoked_between_create_and_delete_is_not_carried_over(site):
    class RevokedAfterCreate(SessionStore):
        def create(self) -> None:
            super().create()
            users.revoke_all_sessions("7")  # the revoke sees both the old session and the new

    store = RevokedAfterCreate(logged_in_store().session_key)
    store._get_session()  # loaded by this request
    with pytest.raises(SessionInterrupted):
        store.cycle_key()
    assert users.user_sessions("7") == []


def test_a_session_revoked_after_the_new_record_and_before_the_new_session(site, monkeypatch):
    """The revoke reads the new record, deletes nothing yet at its place, then the new
    session is stored: it must not survive without a record."""
    store = logged_in_store()
    old_key = store.session_key
    store._get_session()  # loaded by this request
    indexing = user_index.indexing

    def then_revoked(*args: Any) -> Any:
        yield from indexing(*args)
        users.revoke_all_sessions("7")

    monkeypatch.setattr(user_index, "indexing", then_revoked)
    with pytest.raises(SessionInterrupted):
        store.cycle_key()
    monkeypatch.undo()
    assert not SessionStore().exists(old_key)
    assert users.user_sessions("7") == []


def test_a_cycle_key_that_wins_the_race_is_an_ordinary_login(site):
    """The old session is still there when cycle_key deletes it: nothing to refuse."""
    store = logged_in_store(cart=[1])
    old_key = store.session_key
    store._get_session()  # loaded by this request
    store.cycle_key()
    assert store.session_key != old_key and not SessionStore().exists(old_key)
    assert SessionStore(store.session_key)["cart"] == [1]
    assert [s.id for s in users.user_sessions("7")] == [user_index.session_id(store.session_key).hex()]


def test_a_request_revoked_meanwhile_gets_a_400_and_loses_its_cookie(site):
    client = Client()
    client.get("/login")
    response = client.get("/revoked-then-password")
    assert response.status_code == 400  # SessionInterrupted
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == ""  # deleted
    assert users.user_sessions(User.objects.get(username="alice")) == []
    assert client.get("/whoami").json() == {"user": None}


@pytest.mark.django_db(transaction=True)
async def test_an_async_request_revoked_meanwhile(site):
    from asgiref.sync import sync_to_async

    client = AsyncClient()
    await client.get("/login")
    response = await client.get("/arevoked-then-password")
    assert response.status_code == 400
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""  # deleted
    alice = await User.objects.aget(username="alice")
    assert await users.auser_sessions(alice) == []
    assert (await client.get("/whoami")).json() == {"user": None}
    store = await sync_to_async(logged_in_store)()
    await store._aget_session()  # loaded by this request
    await users.arevoke_all_sessions("7")
    with pytest.raises(SessionInterrupted):
        await store.acycle_key()
    assert await users.auser_sessions("7") == []


# Item 11: the index off is an error, not "no sessions" -------------------------------


OFF = _config(15, USER_SESSIONS=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda: users.revoke_all_sessions("7"),
        lambda: users.user_sessions("7"),
        lambda: users.revoke_session("7", "00" * 12),
        lambda: users.revoke_other_sessions(type("Request", (), {"user": "7", "session": None})()),
    ],
)
def test_the_api_raises_when_the_index_is_off(call):
    with (
        override_settings(CACHES={"default": LOCMEM, "sessions": OFF}),
        pytest.raises(UserSessionsOff, match=r"USER_SESSIONS'\] = True"),
    ):
        call()


async def test_the_async_api_raises_when_the_index_is_off():
    with override_settings(CACHES={"default": LOCMEM, "sessions": OFF}):
        for call in (users.arevoke_all_sessions, users.auser_sessions):
            with pytest.raises(UserSessionsOff):
                await call("7")


@pytest.mark.parametrize("args", [["alice", "--revoke-all"], ["alice"], ["--backfill"]])
def test_the_command_fails_when_the_index_is_off(args):
    User.objects.create_user("alice")
    with (
        override_settings(CACHES={"default": LOCMEM, "sessions": OFF}),
        pytest.raises(CommandError, match="USER_SESSIONS") as failed,
    ):
        call_command("usersessions", *args, stdout=StringIO())
    assert failed.value.returncode == 1  # manage.py exits with it
