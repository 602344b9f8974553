"""Each contract operation costs exactly one round trip, counted on the client's sockets."""

from __future__ import annotations

import threading

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.cache import caches
from django.test import override_settings

from cache_sessions.topology import server_facts as facts
from tests.support.configs import _config
from tests.support.redis_stats import sent_by_clients
from tests.support.servers import field_ttls_here, standalone

pytestmark = pytest.mark.django_db(databases=[])


@pytest.fixture
def expect(alias_config):
    """The commands each operation sends (in one round trip), in the alias's mode."""
    if alias_config["OPTIONS"].get("USE_HASH", True):
        overflowed = alias_config["OPTIONS"].get("HASH_MAX_INLINE") == 40  # the session is over 40 bytes
        load = {"hget": 1, "get": 1} if overflowed else {"hget": 1}  # the overflow key fetched with the field
        if field_ttls_here():
            save = {"hsetex": 1, "expire": 1, **({"set": 1} if overflowed else {})}
            return {
                "load": load,
                "save": save,
                "create": {"hsetex": 1, "expire": 1},  # the new sessions below are small
                "exists": {"hget": 1},
                "delete": {"hdel": 1, "del": 1},
            }
        script = {"evalsha": 1}
        return {"load": load, "save": script, "create": script, "exists": {"hget": 1}, "delete": script}
    # SET NX GET needs Redis 7.0: before, a create is a small script (still one round trip).
    create = "set" if standalone().version() >= (7,) else "evalsha"
    return {
        name: {command: 1}
        for name, command in {
            "load": "get",
            "save": "set",
            "create": create,
            "exists": "exists",
            "delete": "del",
        }.items()
    }


@pytest.fixture
def stored(SessionStore, redis):
    session = SessionStore()
    session.update({"_auth_user_id": "1", "token": "t" * 32})
    session.save()
    # Connection open and scripts loaded before counting starts (NOSCRIPT costs a SCRIPT LOAD once).
    missing = SessionStore("z" * 32)
    missing.exists(missing.session_key)
    missing.load()
    missing.delete()
    warm_every_server()
    return session.session_key


def warm_every_server() -> None:
    """On a partitioned alias, a create on each server (scripts loaded; on Redis 6.2, each
    server has answered SET NX GET with the syntax error that makes creates a script)."""
    from cache_sessions.backend import SessionStore

    storage = SessionStore()._storage
    unwritten = {id(redis) for redis in storage.servers()} if hasattr(storage.client, "server_for") else set()
    while unwritten:
        session = SessionStore()
        session.create()
        key = session.session_key
        assert key is not None
        session.delete()
        unwritten.discard(id(storage.redis_for(storage.locate(key)[0])))


def test_load_is_one_round_trip(SessionStore, stored, expect):
    with sent_by_clients() as sent:
        assert SessionStore(stored)["token"] == "t" * 32
    assert (sent.round_trips, sent.commands) == (1, expect["load"])


def test_save_of_existing_session_is_one_round_trip(SessionStore, stored, expect):
    session = SessionStore(stored)
    assert session["_auth_user_id"] == "1"  # loaded before counting
    session["n"] = 1
    with sent_by_clients() as sent:
        session.save()
    assert (sent.round_trips, sent.commands) == (1, expect["save"])


def test_whole_request_is_two_round_trips(SessionStore, stored, alias_config):
    with sent_by_clients() as sent:
        session = SessionStore(stored)
        session["n"] = session.get("n", 0) + 1
        session.save()
    assert sent.round_trips == 2  # an overflowed session's too: its overflow key is fetched with the field


def test_create_is_one_round_trip(SessionStore, stored, expect):
    with sent_by_clients() as sent:
        session = SessionStore()
        session["x"] = 1
        session.save()
    assert (sent.round_trips, sent.commands) == (1, expect["create"])


def test_failed_update_is_one_round_trip(SessionStore, stored, expect, alias_config):
    session = SessionStore(stored)
    session["n"] = 1
    SessionStore(stored).delete()
    with sent_by_clients() as sent, pytest.raises(UpdateError):
        session.save()
    if (
        "hsetex" in expect["save"] and "set" in expect["save"]
    ):  # field TTLs, overflowed: the refused save's overflow key is deleted
        assert (sent.round_trips, sent.commands) == (2, {**expect["save"], "del": 1})
    else:
        assert (sent.round_trips, sent.commands) == (1, expect["save"])


def test_failed_create_is_one_round_trip(SessionStore, stored, expect, alias_config):
    """With field TTLs, a refused HSETEX FNX costs a second round trip (HGET: was it this
    very create, retried?): only on a collision, which random keys make all but impossible."""
    with sent_by_clients() as sent, pytest.raises(CreateError):
        SessionStore(stored).save(must_create=True)
    if alias_config["OPTIONS"].get("USE_HASH", True) and field_ttls_here():
        assert (sent.round_trips, sent.commands) == (2, {**expect["create"], "hget": 1})
    else:
        assert (sent.round_trips, sent.commands) == (1, expect["create"])


@pytest.mark.parametrize("operation", ["exists", "delete"])
def test_exists_and_delete_are_one_round_trip(SessionStore, stored, expect, operation):
    with sent_by_clients() as sent:
        getattr(SessionStore(), operation)(stored)
    assert (sent.round_trips, sent.commands) == (1, expect[operation])


def test_the_listpack_limit_is_read_once_per_process_not_per_thread():
    """Django makes a cache object (so a client) per thread; the server's limit is a
    fact about the server, read with one CONFIG GET for all of them."""
    from cache_sessions.backend import SessionStore

    facts.forget()
    errors: list[BaseException] = []

    def request() -> None:
        try:
            session = SessionStore()
            session["x"] = 1
            session.save()
        except BaseException as exc:  # reported below
            errors.append(exc)

    with override_settings(CACHES={"sessions": _config(7)}), sent_by_clients() as sent:
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        caches["sessions"].client.get_client().flushdb()
    assert not errors
    assert sent.commands["config"] == 1
    assert sent.commands["info"] <= 1  # the server's software: once (never on a server without field TTLs)
    assert sent.commands["evalsha" if not field_ttls_here() else "hsetex"] >= 8
