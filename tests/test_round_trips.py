"""Each contract operation costs exactly one command on the server."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError

from tests.redis_stats import commands_received

pytestmark = pytest.mark.django_db(databases=[])


@pytest.fixture
def expect(alias_config):
    """The single command each operation sends, in the alias's mode."""
    if alias_config["OPTIONS"].get("USE_HASH", True):
        return {"load": "evalsha", "save": "evalsha", "create": "evalsha", "exists": "hget", "delete": "evalsha"}
    return {"load": "get", "save": "set", "create": "set", "exists": "exists", "delete": "del"}


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
    return session.session_key


def total(received) -> int:
    return sum(received.values())


def test_load_is_one_command(SessionStore, redis, stored, expect):
    with commands_received(redis) as received:
        assert SessionStore(stored)["token"] == "t" * 32
    assert received == {expect["load"]: 1}  # also when it lives under an overflow key


def test_save_of_existing_session_is_one_command(SessionStore, redis, stored, expect):
    session = SessionStore(stored)
    assert session["_auth_user_id"] == "1"  # loaded before counting
    session["n"] = 1
    with commands_received(redis) as received:
        session.save()
    assert received == {expect["save"]: 1}


def test_whole_request_is_two_round_trips(SessionStore, redis, stored):
    with commands_received(redis) as received:
        session = SessionStore(stored)
        session["n"] = session.get("n", 0) + 1
        session.save()
    assert total(received) == 2


def test_create_is_one_command(SessionStore, redis, stored, expect):
    with commands_received(redis) as received:
        session = SessionStore()
        session["x"] = 1
        session.save()
    assert received == {expect["create"]: 1}


def test_failed_update_is_one_command(SessionStore, redis, stored, expect):
    session = SessionStore(stored)
    session["n"] = 1
    SessionStore(stored).delete()
    with commands_received(redis) as received, pytest.raises(UpdateError):
        session.save()
    assert received == {expect["save"]: 1}


def test_failed_create_is_one_command(SessionStore, redis, stored, expect):
    with commands_received(redis) as received, pytest.raises(CreateError):
        SessionStore(stored).save(must_create=True)
    assert received == {expect["create"]: 1}


@pytest.mark.parametrize("operation", ["exists", "delete"])
def test_exists_and_delete_are_one_command(SessionStore, redis, stored, expect, operation):
    with commands_received(redis) as received:
        getattr(SessionStore(), operation)(stored)
    assert received == {expect[operation]: 1}
