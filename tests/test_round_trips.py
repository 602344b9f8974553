"""Each contract operation costs exactly one command on the server."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError

from tests.redis_stats import commands_received

pytestmark = pytest.mark.django_db(databases=[])


@pytest.fixture
def stored(SessionStore, redis):
    session = SessionStore()
    session.update({"_auth_user_id": "1", "token": "t" * 32})
    session.save()
    redis.ping()  # the connection exists before counting starts
    return session.session_key


def total(received) -> int:
    return sum(received.values())


def test_load_is_one_get(SessionStore, redis, stored):
    with commands_received(redis) as received:
        assert SessionStore(stored)["token"] == "t" * 32
    assert received == {"get": 1}


def test_save_of_existing_session_is_one_set(SessionStore, redis, stored):
    session = SessionStore(stored)
    assert session["_auth_user_id"] == "1"  # loaded before counting
    session["n"] = 1
    with commands_received(redis) as received:
        session.save()
    assert received == {"set": 1}


def test_whole_request_is_two_round_trips(SessionStore, redis, stored):
    with commands_received(redis) as received:
        session = SessionStore(stored)
        session["n"] = session.get("n", 0) + 1
        session.save()
    assert total(received) == 2


def test_create_is_one_set(SessionStore, redis):
    redis.ping()
    with commands_received(redis) as received:
        session = SessionStore()
        session["x"] = 1
        session.save()
    assert received == {"set": 1}


def test_failed_update_is_one_set(SessionStore, redis, stored):
    session = SessionStore(stored)
    session["n"] = 1
    redis.flushdb()
    with commands_received(redis) as received, pytest.raises(UpdateError):
        session.save()
    assert received == {"set": 1}


def test_failed_create_is_one_set(SessionStore, redis, stored):
    with commands_received(redis) as received, pytest.raises(CreateError):
        SessionStore(stored).save(must_create=True)
    assert received == {"set": 1}


@pytest.mark.parametrize("operation", ["exists", "delete"])
def test_exists_and_delete_are_one_command(SessionStore, redis, stored, operation):
    with commands_received(redis) as received:
        getattr(SessionStore(), operation)(stored)
    assert total(received) == 1
