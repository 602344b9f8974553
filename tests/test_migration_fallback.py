"""Switching to cache_sessions logs nobody out: the read-through fallback (MIGRATE_FROM), end to end.

Users log in on each old engine (its real store: SQLite, files, Redis through the old
package), the site switches its settings to ours, and the same browser is still logged in.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from cache_sessions.checks import options as checks
from cache_sessions.keys import is_valid_session_key
from cache_sessions.storage.registry import sessions_for
from tests.support.migration_site import (  # noqa: F401  (fixtures)
    CASES,
    DJANGO,
    alias,
    caches,
    in_old,
    in_ours,
    logged_in,
    site_fixture,
    url,
    user_fixture,
)
from tests.support.redis_stats import CountingConnection, sent_by_clients
from tests.support.servers import field_ttls_here

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", sorted(CASES))
def test_logged_in_on_the_old_engine_stays_logged_in(name, user):
    case = CASES[name]
    client, key = logged_in(name, user)
    if case.age:
        with case.old_settings():
            case.age(key)  # its store says it has 500 s to live: the copy keeps that
    with case.new_settings():
        assert client.get("/whoami/").content == b"ada"
        now_key = client.cookies[settings.SESSION_COOKIE_NAME].value
        if case.new_key:  # signed cookies: a server-side session now, sent as a new cookie
            assert now_key != key and is_valid_session_key(now_key)
        else:
            assert now_key == key
            assert in_old(key) is None  # moved, not copied
        ours = in_ours(now_key)
        assert ours is not None and ours.data["_auth_user_id"] == str(user.pk)
        if case.age:
            assert 480 < ours.expires_at - time.time() <= 501
        with sent_by_clients() as sent:
            assert client.get("/whoami/").content == b"ada"
        assert sent.round_trips == 1  # migrated: a hit costs what it always costs
        assert client.get("/add/?item=tea").content == b"tea"  # and it saves like any session
    with case.new_settings(migrate=False):  # the fallback switched off: still there
        assert client.get("/whoami/").content == b"ada"


@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case.expire))
def test_expired_old_sessions_are_not_resurrected(name, user):
    case = CASES[name]
    client, key = logged_in(name, user)
    with case.old_settings():
        case.expire(client, key)
    with case.new_settings():
        assert client.get("/whoami/").content == b"-"
        assert in_ours(key) is None


def test_a_miss_costs_two_more_round_trips_and_a_move_four():
    """String to hash mode on one alias: a key in neither store, then one in the old store."""
    case = CASES["ours-string-to-hash"]
    with case.old_settings():
        old = sessions_for("sessions")
        old.create("a" * 32, {"n": 1}, 600)
    with case.new_settings():
        from cache_sessions.backend import SessionStore

        old.create("c" * 32, {"n": 1}, 600)
        SessionStore("c" * 32).load()  # a first move: scripts loaded, connections open, limits read
        with sent_by_clients() as sent:
            assert SessionStore("b" * 32).load() == {}
        # ours (HGET), the old store (GET), and ours again (a request may have moved it meanwhile)
        assert (sent.round_trips, sent.commands) == (3, {"hget": 2, "get": 1})
        with sent_by_clients() as sent:
            assert SessionStore("a" * 32).load() == {"n": 1}
        # ours (HGET), the old store (GET, then PTTL for its remaining life), our create, the old DEL
        create = {"hsetex": 1, "expire": 1} if field_ttls_here() else {"evalsha": 1}
        assert sent.commands == {"hget": 1, "get": 1, "pttl": 1, "del": 1, **create}
        with sent_by_clients() as sent:
            assert SessionStore("a" * 32).load() == {"n": 1}
        assert sent.commands == {"hget": 1}


@pytest.mark.parametrize("cookie", ["abc", "A" * 32, "../../etc/passwd", "a" * 129, "x:y:z"])
def test_a_malformed_cookie_reaches_no_store(cookie, user, django_assert_num_queries):
    client, _ = logged_in("db", user)
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    with CASES["db"].new_settings(), sent_by_clients() as sent, django_assert_num_queries(0):
        assert client.get("/whoami/").content == b"-"
    assert sent.round_trips == 0
    with CASES["ours-string-to-hash"].new_settings(), sent_by_clients() as sent:
        assert client.get("/whoami/").content == b"-"
    assert sent.round_trips == 0


def test_a_forged_signed_cookie_is_no_session(user):
    client, key = logged_in("signed_cookies", user)
    client.cookies[settings.SESSION_COOKIE_NAME] = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
    with CASES["signed_cookies"].new_settings(), sent_by_clients() as sent:
        assert client.get("/whoami/").content == b"-"
    assert sent.round_trips == 0  # a bad signature: nothing asked of any store


def test_a_logout_before_the_move_removes_the_old_copy_too(user):
    """Otherwise the fallback would bring the session back for a replayed cookie."""
    client, key = logged_in("db", user)
    with CASES["db"].new_settings():
        from cache_sessions.backend import SessionStore

        SessionStore(key).delete()
        assert in_old(key) is None
        assert client.get("/whoami/").content == b"-"


def test_two_requests_moving_one_session_at_once_both_see_it(user):
    _, key = logged_in("redis_sessions", user)
    with CASES["redis_sessions"].new_settings():
        from cache_sessions.backend import SessionStore

        seen = []
        threads = [threading.Thread(target=lambda: seen.append(SessionStore(key).load())) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [session["_auth_user_id"] for session in seen] == [str(user.pk)] * 4
        assert in_old(key) is None


def test_a_session_already_here_is_not_overwritten(user):
    _client, key = logged_in("db", user)
    with CASES["db"].new_settings():
        sessions_for("sessions").create(key, {"_auth_user_id": "999"}, 600)  # moved and changed since
        from cache_sessions.backend import SessionStore

        assert SessionStore(key).load() == {"_auth_user_id": "999"}  # a hit: the old store is not asked
        assert in_old(key) is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["ours-string-to-hash", "redis_sessions", "signed_cookies"])
async def test_async_loads_move_natively_on_the_event_loop(name, user):
    from asgiref.sync import sync_to_async

    _client, key = await sync_to_async(logged_in)(name, user)
    with CASES[name].new_settings():
        from cache_sessions.backend import SessionStore

        store = SessionStore(key)
        with sent_by_clients() as sent:
            session = await store.aload()
        assert session["_auth_user_id"] == str(user.pk)
        assert sent.threads <= {threading.get_ident()}  # no thread hop
        assert sent.asyncio == sent.round_trips
        if CASES[name].new_key:
            assert store.session_key is None and store.modified  # saved under a new key
            await store.asave()
            assert is_valid_session_key(store.session_key)
        else:
            assert (await sync_to_async(in_old)(key)) is None


@pytest.mark.django_db(transaction=True)
async def test_async_loads_from_a_database_hop_to_a_thread(user):
    from asgiref.sync import sync_to_async

    _, key = await sync_to_async(logged_in)("db", user)
    with CASES["db"].new_settings():
        from cache_sessions.backend import SessionStore

        assert (await SessionStore(key).aload())["_auth_user_id"] == str(user.pk)
        assert (await SessionStore(key).aload())["_auth_user_id"] == str(user.pk)  # now a hit


@pytest.mark.parametrize(
    "value, error",
    [
        (42, "must be an engine's dotted path"),
        ({"ENGINE": DJANGO + "db", "CACHE_ALIAS": "x"}, "takes: none"),
        ({"ENGINE": DJANGO + "cache", "CACHE_ALIAS": "nope"}, "there is no CACHES['nope']"),
        ({"ENGINE": "myapp.nowhere"}, "cannot import myapp.nowhere.SessionStore"),
        ({"ENGINE": "cache_sessions.backend"}, "the very storage its sessions live in"),
        ({"USE_HASH": False, "COLOUR": 1}, "COLOUR: not cache_sessions options"),
        ("missing_alias", "There is no cache alias 'missing_alias'"),
    ],
)
def test_a_bad_migrate_from_is_reported_by_the_checks(value, error):
    with override_settings(
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
        CACHES=caches(alias(0, MIGRATE_FROM=value)),
    ):
        if isinstance(value, int):
            with pytest.raises(ImproperlyConfigured, match=error):
                sessions_for("sessions")
            return
        messages = checks.check_migrate_from()
        assert [message.id for message in messages] == ["cache_sessions.E003"]
        assert error in messages[0].msg
        assert not checks.check_options()  # MIGRATE_FROM is a known option (no W004)


def test_an_old_store_that_is_down_is_a_503_not_a_logout(user):
    """The old store cannot answer: try again later, never "no session"."""
    client, key = logged_in("ours-other-alias", user)
    dead = {**alias(1, USE_HASH=False), "LOCATION": "redis://127.0.0.1:1/0"}
    dead["OPTIONS"] = {**dead["OPTIONS"], "RETRY": 0}
    with override_settings(
        SESSION_ENGINE="cache_sessions.backend",
        MIDDLEWARE=["cache_sessions.middleware.SessionMiddleware", *settings.MIDDLEWARE[1:]],
        CACHES=caches(alias(0, MIGRATE_FROM="previous"), previous=dead),
    ):
        client.raise_request_exception = False
        assert client.get("/whoami/").status_code == 503
    assert in_ours(key) is None  # nothing was moved, nothing lost: the old copy waits for the next request


def test_counting_connections_are_used():
    """The round-trip counts above are meaningful: the aliases count on their sockets."""
    assert alias(0)["OPTIONS"]["CONNECTION_POOL_KWARGS"]["connection_class"] is CountingConnection
    assert url(0).startswith(("redis://", "unix://"))


def test_an_old_django_cache_that_is_down_is_a_503_too():
    client = Client(raise_request_exception=False)
    client.cookies[settings.SESSION_COOKIE_NAME] = "k" * 32
    dead = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(
        SESSION_ENGINE="cache_sessions.backend",
        MIDDLEWARE=["cache_sessions.middleware.SessionMiddleware", *settings.MIDDLEWARE[1:]],
        CACHES=caches(alias(0, MIGRATE_FROM={"ENGINE": DJANGO + "cache", "CACHE_ALIAS": "dead"}), dead=dead),
    ):
        assert client.get("/whoami/").status_code == 503
