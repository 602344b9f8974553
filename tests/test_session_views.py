"""The session pages (``cache_sessions.urls`` and ``urls_async``): a user's list, and ending
one session, the others or all, through real logins and requests on a real server. Only the
requester's own sessions, only by POST with a CSRF token, only when signed in."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path

from cache_sessions import signals, users, views
from cache_sessions.checks import users as user_checks
from cache_sessions.engine import display
from tests.support.configs import HASH, STRING, _config
from tests.support.partitions import raw
from tests.support.redis_stats import sent_by_clients
from tests.test_users import FIREFOX, INDEXED, IPHONE, LOCMEM, alog_in, log_in, whoami

pytestmark = pytest.mark.django_db

MIDDLEWARE = [
    "cache_sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
LIST, OTHERS, ALL = "/account/sessions/", "/account/sessions/other/delete/", "/account/sessions/all/delete/"


class CustomListView(views.SessionListView):
    """A site's subclass with a template of its own (tests/templates/custom_session_list.html)."""

    template_name = "custom_session_list.html"


urlpatterns = [
    path("login", log_in),
    path("alogin", alog_in),
    path("whoami", whoami),
    path("", include("cache_sessions.urls")),
    path("async/", include("cache_sessions.urls_async", namespace="async")),
    path("custom/", CustomListView.as_view()),
]


def end_one(session_id: str) -> str:
    return f"/account/sessions/{session_id}/delete/"


@pytest.fixture(params=[HASH, STRING], ids=["hash", "string"])
def site(request: pytest.FixtureRequest) -> Iterator[None]:
    config = _config(4, **request.param, **INDEXED)
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": config}, MIDDLEWARE=MIDDLEWARE, ROOT_URLCONF=__name__
    ):
        User.objects.create_user("alice", password="x")
        User.objects.create_user("bob", password="x")
        yield
        raw("sessions").flushdb()


def device(agent: str = FIREFOX, address: str = "192.0.2.1", name: str = "alice", **kwargs: Any) -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=address, **kwargs)
    assert client.get("/login", {"u": name}).status_code == 200
    return client


def who(client: Client) -> str | None:
    user: str | None = client.get("/whoami").json()["user"]
    return user


def other_id(client: Client, name: str = "alice") -> str:
    """The id of the one session of ``name`` that is not ``client``'s."""
    listed = users.user_sessions(User.objects.get(username=name), current=client.session.session_key)
    [other] = [s for s in listed if not s.current]
    return other.id


def ids(name: str) -> set[str]:
    return {s.id for s in users.user_sessions(User.objects.get(username=name))}


@pytest.fixture
def revoked() -> Iterator[list[dict[str, Any]]]:
    """What ``sessions_revoked`` was sent with, while the test runs."""
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append({"sender": sender, **kwargs})

    signals.sessions_revoked.connect(receiver)
    yield sent
    signals.sessions_revoked.disconnect(receiver)


def test_the_list_shows_each_session_this_one_first(site):
    laptop, _phone = device(), device(IPHONE, "198.51.100.7")
    response = laptop.get(LIST)
    assert response.status_code == 200
    assert "max-age=0" in response["Cache-Control"]  # never cached
    assert [t.name for t in response.templates][:2] == ["cache_sessions/session_list.html", "cache_sessions/base.html"]
    page = response.content.decode()
    assert page.count("<tr") == 3  # a header, two sessions
    assert page.index("Firefox on Linux") < page.index("(this session)") < page.index("Safari on iOS")
    assert "198.51.100.7" in page and "192.0.2.1" in page
    assert page.count(">just now</time>") == 4  # logged in, last seen, for each
    assert "End all other sessions" in page and "Log out everywhere" in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_ending_another_session_logs_that_device_out(site, revoked):
    laptop, phone = device(), device(IPHONE)
    url = end_one(other_id(laptop))
    response = laptop.post(url, follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert "The session was ended: that device is logged out." in response.content.decode()
    assert who(phone) is None and who(laptop) == "alice"
    assert [(r["by"], r["count"], r["request"].path) for r in revoked] == [("self", 1, url)]
    alice = User.objects.get(username="alice")
    assert revoked[0]["user_id"] == str(alice.pk) and revoked[0]["sender"] is User


def test_ending_this_session_logs_out(site):
    laptop, phone = device(), device(IPHONE)
    listed = users.user_sessions(User.objects.get(username="alice"), current=laptop.session.session_key)
    [mine] = [s.id for s in listed if s.current]
    with override_settings(LOGOUT_REDIRECT_URL="/whoami"):
        response = laptop.post(end_one(mine))
    assert response.status_code == 302 and response["Location"] == "/whoami"
    assert who(laptop) is None and who(phone) == "alice"


def test_ending_the_others(site, revoked):
    laptop, phone, tablet = device(), device(IPHONE), device(IPHONE, "203.0.113.9")
    response = laptop.post(OTHERS, follow=True)
    assert "2 other sessions were ended." in response.content.decode()
    assert (who(phone), who(tablet), who(laptop)) == (None, None, "alice")
    assert [(r["by"], r["count"]) for r in revoked] == [("self", 2)]
    response = laptop.post(OTHERS, follow=True)
    assert "There were no other sessions to end." in response.content.decode()
    assert len(revoked) == 1  # nothing ended, nothing sent


def test_ending_all_logs_out_everywhere(site):
    laptop, phone = device(), device(IPHONE)
    response = laptop.post(ALL)
    assert response.status_code == 302 and response["Location"] == "/"
    assert who(laptop) is None and who(phone) is None
    assert ids("alice") == set()
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "You are logged out everywhere: 2 sessions were ended."
    ]


@pytest.mark.parametrize("wanted", ["bob's", "a made-up one", "not hex", "too long"])
def test_a_session_that_is_not_the_requesters_is_a_404_and_nothing_ends(site, wanted, revoked):
    laptop, _phone, bob = device(), device(IPHONE), device(name="bob")
    session_id = {
        "bob's": next(iter(ids("bob"))),
        "a made-up one": "0" * 24,
        "not hex": "z" * 24,
        "too long": "a" * 10_000,
    }[wanted]
    assert laptop.post(end_one(session_id)).status_code == 404
    assert len(ids("alice")) == 2 and len(ids("bob")) == 1
    assert who(bob) == "bob"
    assert revoked == []


def test_signed_out_visitors_are_sent_to_log_in_and_end_nothing(site):
    _laptop = device()
    visitor = Client()
    response = visitor.get(LIST)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={LIST}"
    for url in (end_one(next(iter(ids("alice")))), OTHERS, ALL):
        assert visitor.post(url).status_code == 302
    assert len(ids("alice")) == 1


@pytest.mark.parametrize("middleware", ["with", "without"])
def test_actions_need_a_csrf_token(site, middleware):
    """The actions check the token themselves: a site without CsrfViewMiddleware is protected too."""
    stack = MIDDLEWARE if middleware == "with" else [m for m in MIDDLEWARE if "csrf" not in m]
    laptop, _phone = device(enforce_csrf_checks=True), device(IPHONE)
    with override_settings(MIDDLEWARE=stack):
        for url in (end_one(other_id(laptop)), OTHERS, ALL):
            assert laptop.post(url).status_code == 403
        assert len(ids("alice")) == 2
        laptop.get(LIST)  # the page sets the CSRF cookie its forms go with
        token = laptop.cookies["csrftoken"].value
        assert laptop.post(OTHERS, {"csrfmiddlewaretoken": token}).status_code == 302
    assert len(ids("alice")) == 1


def test_get_never_ends_a_session(site):
    laptop, _phone = device(), device(IPHONE)
    for url in (end_one(other_id(laptop)), OTHERS, ALL):
        for method in ("get", "head", "put", "delete"):
            assert getattr(laptop, method)(url).status_code == 405, (method, url)
    assert len(ids("alice")) == 2


def test_without_user_sessions_the_pages_say_what_is_missing(site):
    laptop = device()
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(4, **HASH)}):
        with pytest.raises(ImproperlyConfigured, match=r"OPTIONS\['USER_SESSIONS'\] = True"):
            laptop.get(LIST)
        with pytest.raises(ImproperlyConfigured):
            laptop.post(ALL)
        [warning] = user_checks.check_session_pages()
    assert warning.id == "cache_sessions.W011"
    assert user_checks.check_session_pages() == []  # on again
    with override_settings(ROOT_URLCONF="tests.no_such_urlconf"):
        assert user_checks.check_session_pages() == []  # reported by Django's own URL checks, never a crash


def test_without_metadata_the_list_shows_ids(site):
    config = _config(4, **HASH, USER_SESSIONS=True)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        laptop = device()
        page = laptop.get(LIST).content.decode()
        [listed] = ids("alice")
    assert "IP address" not in page and "Firefox" not in page
    assert f"<code>{listed[:8]}…</code>" in page


def test_the_list_in_french(site):
    laptop, _phone = device(HTTP_ACCEPT_LANGUAGE="fr"), device(IPHONE)
    page = laptop.get(LIST).content.decode()
    assert '<html lang="fr">' in page
    assert "<title>Vos sessions</title>" in page
    assert "Firefox sous Linux" in page and "(cette session)" in page and "Safari sous iOS" in page
    assert page.count(">à l\u2019instant</time>") == 4
    assert "Terminer les autres sessions" in page and "Se déconnecter partout" in page
    page = laptop.post(OTHERS, follow=True).content.decode()
    assert "1 autre session a été terminée." in page


def test_a_site_base_template_and_a_template_of_its_own(site):
    laptop = device()
    with override_settings(CACHE_SESSIONS_BASE_TEMPLATE="site_base.html"):
        page = laptop.get(LIST).content.decode()
        assert '<div id="site">' in page and "<style>" not in page
        custom = laptop.get("/custom/").content.decode()
    assert '<div id="site">' in custom
    assert "<h1>Where you are signed in</h1>" in custom and "Your sessions</h1>" not in custom  # a block replaced
    assert "Firefox on Linux" in custom  # the rest as it was


# Async views, under ASGI ---------------------------------------------------------------


async def async_device(agent: str = FIREFOX, name: str = "alice") -> AsyncClient:
    client = AsyncClient(HTTP_USER_AGENT=agent)
    assert (await client.get("/alogin", {"u": name})).status_code == 200
    return client


@pytest.mark.django_db(transaction=True)  # the ORM's async calls run in another thread
async def test_async_views_keep_every_redis_call_on_the_loop(site, revoked):
    laptop, phone, bob = await async_device(), await async_device(IPHONE), await async_device(name="bob")
    await laptop.get("/async" + LIST)  # warm: scripts loaded, facts known
    loop_thread = threading.get_ident()
    with sent_by_clients() as sent:
        page = (await laptop.get("/async" + LIST)).content.decode()
    assert page.count("<tr") == 3 and 'action="/async/account/sessions/other/delete/"' in page
    assert sent.round_trips == sent.asyncio >= 2  # the session, the listing: all native...
    assert sent.threads == {loop_thread}  # ...and from the loop's thread
    alice = await User.objects.aget(username="alice")
    bobs = [s.id for s in await users.auser_sessions(await User.objects.aget(username="bob"))]
    assert (await laptop.post("/async" + end_one(bobs[0]))).status_code == 404
    with sent_by_clients() as sent:
        response = await laptop.post("/async" + OTHERS)
    assert response.status_code == 302 and response["Location"] == "/async" + LIST
    assert sent.round_trips == sent.asyncio and sent.threads == {loop_thread}
    assert (await phone.get("/whoami")).json() == {"user": None}
    assert (await bob.get("/whoami")).json() == {"user": "bob"}
    assert [(r["by"], r["count"], r["user_id"]) for r in revoked] == [("self", 1, str(alice.pk))]
    [mine] = await users.auser_sessions(alice)
    assert (await laptop.post("/async" + end_one(mine.id))).status_code == 302
    assert (await laptop.get("/whoami")).json() == {"user": None}


@pytest.mark.django_db(transaction=True)
async def test_async_end_all_and_refusals(site):
    laptop, phone = await async_device(), await async_device(IPHONE)
    visitor = AsyncClient()
    assert (await visitor.get("/async" + LIST))["Location"] == f"/accounts/login/?next=/async{LIST}"
    assert (await laptop.get("/async" + ALL)).status_code == 405
    strict = AsyncClient(enforce_csrf_checks=True)
    strict.cookies = laptop.cookies
    assert (await strict.post("/async" + ALL)).status_code == 403
    assert (await phone.get("/whoami")).json() == {"user": "alice"}
    response = await laptop.post("/async" + ALL)
    assert response.status_code == 302 and response["Location"] == "/"
    assert (await phone.get("/whoami")).json() == {"user": None}
    assert (await laptop.get("/whoami")).json() == {"user": None}


# The signal, from the API and the command ------------------------------------------


def test_the_api_and_the_command_send_sessions_revoked(site, revoked):
    from io import StringIO

    from django.core.management import call_command

    _laptop, _phone, bob = device(), device(IPHONE), device(name="bob")
    alice = User.objects.get(username="alice")
    assert users.revoke_session(alice, "0" * 24) is False  # nothing ended: nothing sent
    assert revoked == []
    call_command("usersessions", "bob", "--revoke-all", stdout=StringIO())
    assert [(r["by"], r["count"], r["request"]) for r in revoked] == [("command", 1, None)]
    marker = object()
    with signals.revoking("support", request=marker):  # type: ignore[arg-type]
        users.revoke_session(alice, next(iter(ids("alice"))))
    assert (revoked[-1]["by"], revoked[-1]["request"]) == ("support", marker)
    assert users.revoke_all_sessions(alice.pk) == 1  # by id
    assert [(r["by"], r["count"], r["user_id"]) for r in revoked[2:]] == [("api", 1, str(alice.pk))]
    assert who(bob) is None


@pytest.mark.django_db(transaction=True)
async def test_the_async_api_sends_it_through_asend(site, revoked):
    got: list[tuple[str, int]] = []

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        got.append((kwargs["by"], kwargs["count"]))

    signals.sessions_revoked.connect(async_receiver)
    try:
        await async_device(), await async_device(IPHONE)
        alice = await User.objects.aget(username="alice")
        assert await users.arevoke_all_sessions(alice) == 2
    finally:
        signals.sessions_revoked.disconnect(async_receiver)
    assert got == [("api", 2)] and [(r["by"], r["count"]) for r in revoked] == [("api", 2)]


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (0, "just now"),
        (59, "just now"),
        (-30, "just now"),  # written by a web server whose clock runs a little ahead
        (60, "1\xa0minute ago"),
        (3600 + 61, "1\xa0hour, 1\xa0minute ago"),
        (2 * 86400 + 7200 + 59, "2\xa0days, 2\xa0hours ago"),
    ],
)
def test_times_ago_say_just_now_under_a_minute(age, text):
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
    assert display.ago(moment) == text
    assert display.ago(None) == ""
