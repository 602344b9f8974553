"""Sessions per user (USER_SESSIONS): the index the engine keeps, and listing and
revoking a user's sessions, through real logins and real requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import alogin, get_user_model, login
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from cache_sessions import users
from cache_sessions.backend import SessionStore
from cache_sessions.storage import index as user_index
from tests.support.configs import CONFIGS, HASH, STRING, _config
from tests.support.partitions import raw
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1"


def log_in(request: HttpRequest) -> HttpResponse:
    login(request, User.objects.get(username=request.GET["u"]))
    return HttpResponse("ok")


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None})


def devices(request: HttpRequest) -> HttpResponse:
    listed = users.user_sessions(request.user, current=request)
    return JsonResponse({"sessions": [s.__dict__ for s in listed]})


def log_out_others(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ended": users.revoke_other_sessions(request)})


def log_out(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import logout

    logout(request)
    return HttpResponse("bye")


async def alog_in(request: HttpRequest) -> HttpResponse:
    user = await User.objects.aget(username=request.GET["u"])
    await alogin(request, user)
    return HttpResponse("ok")


async def adevices(request: HttpRequest) -> HttpResponse:
    listed = await users.auser_sessions(await request.auser(), current=request)
    return JsonResponse({"sessions": [s.__dict__ for s in listed]})


async def alog_out_others(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ended": await users.arevoke_other_sessions(request)})


urlpatterns = [
    path("login", log_in),
    path("whoami", whoami),
    path("devices", devices),
    path("others", log_out_others),
    path("logout", log_out),
    path("alogin", alog_in),
    path("adevices", adevices),
    path("aothers", alog_out_others),
]


INDEXED = {"USER_SESSIONS": True, "USER_SESSION_METADATA": True}
# Both modes on one server, and on every other topology of tests/support/configs.py.
TOPOLOGIES = {
    "string": _config(4, **STRING, **INDEXED),
    "hash": _config(4, **HASH, **INDEXED),
    **{
        name: {**CONFIGS[name], "OPTIONS": {**CONFIGS[name]["OPTIONS"], **INDEXED}}
        for name in CONFIGS
        if name.split("-", 1)[1] in ("cluster", "sentinel", "partitioned")
    },
}


@pytest.fixture(params=sorted(TOPOLOGIES))
def site(request: pytest.FixtureRequest) -> Iterator[dict[str, bool]]:
    config = TOPOLOGIES[request.param]
    middleware = [
        "cache_sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": config}, MIDDLEWARE=middleware, ROOT_URLCONF=__name__
    ):
        get_user_model().objects.create_user("alice", password="x")
        get_user_model().objects.create_user("bob", password="x")
        yield {"USE_HASH": config["OPTIONS"].get("USE_HASH", True)}
        raw("sessions").flushdb()


def on(name: bytes) -> Any:
    """The raw client of the server that holds ``name`` (whatever the topology)."""
    return SessionStore()._storage.redis_for(name)


def device(agent: str = FIREFOX, address: str = "192.0.2.1") -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=address)
    assert client.get("/login", {"u": "alice"}).status_code == 200
    return client


def test_log_out_other_devices(site):
    laptop, phone = device(), device(IPHONE, "198.51.100.7")
    listed = laptop.get("/devices").json()["sessions"]
    assert len(listed) == 2
    mine = [s for s in listed if s["current"]]
    assert len(mine) == 1 and mine[0]["user_agent"] == "Firefox on Linux" and mine[0]["ip"] == "192.0.2.1"
    other = next(s for s in listed if not s["current"])
    assert other["user_agent"] == "Safari on iOS" and other["ip"] == "198.51.100.7"
    assert other["id"] not in (laptop.cookies["sessionid"].value, phone.cookies["sessionid"].value)
    assert laptop.get("/others").json() == {"ended": 1}
    assert phone.get("/whoami").json() == {"user": None}  # revoked: anonymous on its next request
    assert laptop.get("/whoami").json() == {"user": "alice"}
    assert [s["current"] for s in laptop.get("/devices").json()["sessions"]] == [True]


def run_of(user: User) -> dict[bytes, list]:
    storage = SessionStore()._storage
    entry = user_index.IndexEntry.of(storage, str(user.pk))
    return user_index.records(storage.execute(entry.read_call()), time.time())


def test_logout_removes_the_record_and_an_index_never_outlives_its_sessions(site):
    laptop = device()
    storage = SessionStore()._storage
    alice = User.objects.get(username="alice")
    entry = user_index.IndexEntry.of(storage, str(alice.pk))
    assert len(run_of(alice)) == 1
    assert on(entry.bucket).ttl(entry.bucket) >= 1209600  # covers the session (two weeks by default)
    laptop.get("/logout")
    assert not on(entry.bucket).hexists(entry.bucket, entry.field)  # its last record gone, the field too
    assert not on(entry.bucket).exists(entry.bucket)  # and the bucket, empty, with it


def test_entries_of_sessions_gone_elsewhere_are_dropped_when_met(site):
    laptop, phone = device(), device(IPHONE)
    storage = SessionStore()._storage
    SessionStore().delete(phone.cookies["sessionid"].value)  # e.g. cleared by an operator, not through the index
    alice = User.objects.get(username="alice")
    assert len(run_of(alice)) == 2  # not known to be stale yet...
    assert len(users.user_sessions(alice)) == 1  # ...dropped when a listing meets it
    assert len(run_of(alice)) == 1
    assert storage.prefix  # (the same alias throughout)
    assert laptop.get("/whoami").json() == {"user": "alice"}


def test_revoke_all_and_revoke_one(site):
    laptop, phone = device(), device(IPHONE)
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    bob_client = Client()
    bob_client.get("/login", {"u": "bob"})
    [phone_entry] = [s for s in users.user_sessions(alice, current=laptop.cookies["sessionid"].value) if not s.current]
    assert not users.revoke_session(bob, phone_entry.id)  # not one of bob's: nothing happens
    assert phone.get("/whoami").json() == {"user": "alice"}
    assert users.revoke_session(alice, phone_entry.id)
    assert phone.get("/whoami").json() == {"user": None}
    assert users.revoke_all_sessions(alice) == 1
    assert laptop.get("/whoami").json() == {"user": None}
    assert users.user_sessions(alice) == []
    assert bob_client.get("/whoami").json() == {"user": "bob"}


def test_costs_no_round_trip_on_load_and_one_on_login(site):
    laptop = device()
    with sent_by_clients() as request:
        laptop.get("/whoami")
    assert request.round_trips == 1  # a load, nothing for the index
    with sent_by_clients() as logging_in:
        device()
    # cycle_key's create (1) and delete of the anonymous session (1), the index entry (1), the save (1)
    assert logging_in.round_trips <= 4


def test_last_seen_costs_a_write_at_most_once_per_period(site):
    laptop = device()
    key = laptop.cookies["sessionid"].value
    with sent_by_clients() as quiet:
        for _ in range(3):
            laptop.get("/whoami")
    assert quiet.round_trips == 3  # loads only: "last seen" is recent
    session = SessionStore(key)
    created, _, expires = session[user_index.MARK]
    session[user_index.MARK] = [created, int(time.time()) - 901, expires]  # as if last seen over a period ago
    session._storage.update(key, dict(session.items()), 3600)
    with sent_by_clients() as due:
        laptop.get("/whoami")  # a read: the middleware saves it anyway, once
    assert due.round_trips == 3  # load, the index entry, the save
    assert SessionStore(key)[user_index.MARK][1] >= int(time.time()) - 5
    [listed] = users.user_sessions(User.objects.get(username="alice"))
    assert listed.created == created and listed.last_seen >= int(time.time()) - 5


def test_opaque_ids_reveal_nothing():
    key = SessionStore()._get_new_session_key()
    sid = user_index.session_id(key)
    assert len(sid) == 12 and key.encode() not in sid
    with override_settings(SECRET_KEY="another secret"):
        assert user_index.session_id(key) != sid  # an HMAC: without the secret, nobody computes it


@pytest.mark.parametrize(
    ("agent", "summary"),
    [
        (FIREFOX, "Firefox on Linux"),
        (IPHONE, "Safari on iOS"),
        ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 Edg/124.0", "Edge on Windows"),
        ("curl/8.5.0", "curl"),
        ("", ""),
        ("x" * 500, "x" * 64),
    ],
)
def test_user_agent_summary(agent, summary):
    assert user_index.summarize(agent) == summary


@pytest.mark.django_db(transaction=True)  # the ORM's async calls run in another thread
async def test_async_api_through_asgi(site):
    laptop, phone = AsyncClient(HTTP_USER_AGENT=FIREFOX), AsyncClient(HTTP_USER_AGENT=IPHONE)
    for client in (laptop, phone):
        assert (await client.get("/alogin", {"u": "alice"})).status_code == 200
    assert len((await laptop.get("/adevices")).json()["sessions"]) == 2
    assert (await laptop.get("/aothers")).json() == {"ended": 1}
    assert (await phone.get("/whoami")).json() == {"user": None}
    assert [s["current"] for s in (await laptop.get("/adevices")).json()["sessions"]] == [True]


def test_usersessions_command(site):
    from io import StringIO

    from django.core.management import CommandError, call_command

    laptop, phone = device(), device(IPHONE, "198.51.100.7")
    out = StringIO()
    call_command("usersessions", "alice", stdout=out)
    listing = out.getvalue()
    assert listing.startswith("2 session(s) of alice:")
    assert "Safari on iOS" in listing and "198.51.100.7" in listing and "Firefox on Linux" in listing
    phone_id = next(line.split()[0] for line in listing.splitlines() if "iOS" in line)
    call_command("usersessions", str(User.objects.get(username="alice").pk), "--revoke", phone_id, stdout=StringIO())
    assert phone.get("/whoami").json() == {"user": None}
    out = StringIO()
    call_command("usersessions", "alice", "--revoke-all", stdout=out)
    assert out.getvalue().strip() == "1 session(s) of alice ended."
    assert laptop.get("/whoami").json() == {"user": None}
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("usersessions", "nobody", stdout=StringIO())


def test_a_user_with_many_sessions_moves_to_an_overflow_key_and_back(site):
    """A run of records too long for the bucket's compact encoding goes to a key of its own."""
    storage = SessionStore()._storage
    alice = User.objects.get(username="alice")
    entry = user_index.IndexEntry.of(storage, str(alice.pk))
    clients = [device() for _ in range(5)]  # ~5 x 80 bytes of records with metadata: over 256
    assert user_index.is_overflow_pointer(on(entry.bucket).hget(entry.bucket, entry.field))
    assert on(entry.bucket).ttl(entry.overflow) >= 1209600
    assert on(entry.bucket).object("encoding", entry.bucket) in (b"listpack", b"ziplist")
    assert len(users.user_sessions(alice)) == 5
    assert clients[0].get("/others").json() == {"ended": 4}
    assert not user_index.is_overflow_pointer(on(entry.bucket).hget(entry.bucket, entry.field))
    assert not on(entry.bucket).exists(entry.overflow)
    assert len(users.user_sessions(alice)) == 1


def test_cleanuprs_drops_expired_records_and_nothing_else(site):
    from io import StringIO

    from django.core.management import call_command

    laptop = device()
    storage = SessionStore()._storage
    alice = User.objects.get(username="alice")
    entry = user_index.IndexEntry.of(storage, str(alice.pk))
    # A record that expired (its session is gone by now), beside alice's live one.
    expired = user_index.record(bytes(12), int(time.time()) - 10, [[b"gone"]])
    on(entry.bucket).hset(entry.bucket, entry.field, on(entry.bucket).hget(entry.bucket, entry.field) + expired)
    on(entry.bucket).hset(entry.bucket, b"foreign", b"not a run of records")  # e.g. left by a bug: kept
    out = StringIO()
    call_command("cleanuprs", "--all", stdout=out)
    assert "1 expired removed" in out.getvalue()
    assert len(run_of(alice)) == 1
    assert on(entry.bucket).hget(entry.bucket, b"foreign") == b"not a run of records"
    assert laptop.get("/whoami").json() == {"user": "alice"}


def test_records_that_do_not_fit_this_storage_mode_are_skipped(site):
    """E.g. records left from before USE_HASH changed: listed as nothing, revoked as nothing."""
    laptop = device()
    storage = SessionStore()._storage
    alice = User.objects.get(username="alice")
    entry = user_index.IndexEntry.of(storage, str(alice.pk))
    foreign = user_index.record(bytes(12), int(time.time()) + 600, [[b"a", b"b", b"c"]])  # no mode has 3 names
    on(entry.bucket).hset(entry.bucket, entry.field, on(entry.bucket).hget(entry.bucket, entry.field) + foreign)
    assert len(users.user_sessions(alice)) == 1
    assert users.revoke_all_sessions(alice) == 1
    assert laptop.get("/whoami").json() == {"user": None}


@pytest.mark.django_db(transaction=True)
async def test_async_revoke_one_and_all(site):
    alice = await User.objects.aget(username="alice")
    laptop, phone = AsyncClient(HTTP_USER_AGENT=FIREFOX), AsyncClient(HTTP_USER_AGENT=IPHONE)
    for client in (laptop, phone):
        await client.get("/alogin", {"u": "alice"})
    listed = await users.auser_sessions(alice, current=laptop.cookies["sessionid"].value)
    [other] = [s for s in listed if not s.current]
    assert not await users.arevoke_session(alice, "not-an-id")
    assert await users.arevoke_session(alice, other.id)
    assert (await phone.get("/whoami")).json() == {"user": None}
    assert await users.arevoke_all_sessions(alice) == 1
    assert (await laptop.get("/whoami")).json() == {"user": None}
