"""Bad input and broken servers get a clear answer, and nobody's session is lost."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings
from django_redis.exceptions import ConnectionInterrupted

from cache_sessions.backend import SessionStore
from cache_sessions.errors import UnencodableSession
from cache_sessions.testing import free_port
from tests.support.configs import _config

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@pytest.fixture
def dead_alias():
    config = {**_config(0), "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    config["OPTIONS"] = {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5}
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        yield


@pytest.mark.parametrize("operation", ["load", "save", "exists", "delete"])
def test_unreachable_server_raises_instead_of_emptying_the_session(dead_alias, operation):
    key = "a" * 32
    session = SessionStore(key)
    calls = {
        "load": lambda: session.load(),
        "save": lambda: session.save(),
        "exists": lambda: session.exists(key),
        "delete": lambda: session.delete(),
    }
    with pytest.raises(ConnectionInterrupted) as info:
        calls[operation]()
    assert "Connection refused" in str(info.value.__cause__) or "connecting" in str(info.value.__cause__)
    assert session.session_key == key  # the user's key is kept for the next, healthy request


async def test_unreachable_server_async(dead_alias):
    session = SessionStore("a" * 32)
    with pytest.raises(ConnectionInterrupted):
        await session.aload()


def store_raw(redis, location, value: bytes) -> None:
    if len(location) == 1:
        redis.set(location[0], value)
    else:
        redis.hset(location[0], location[1], value)


def read_raw(redis, location) -> bytes:
    return redis.get(location[0]) if len(location) == 1 else redis.hget(location[0], location[1])


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00\x01", b"\x20future-format", b"\x10\x81\xa1", b"\x11not-snappy", b"\x80\x04pickle."]
)
def test_garbage_in_redis_loads_as_empty_session_with_a_warning(SessionStore, redis, caplog, garbage):
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    location = session._storage.locate(key)
    store_raw(redis, location, garbage)
    with caplog.at_level(logging.WARNING, "django.security.SuspiciousSession"):
        fresh = SessionStore(key)
        assert fresh.load() == {}
    assert fresh.session_key is None
    assert "Unreadable session data" in caplog.text
    assert read_raw(redis, location) == garbage  # kept for inspection, not overwritten
    fresh["y"] = 2
    fresh.save()
    assert fresh.session_key != key


def test_wrong_redis_type_under_a_session_key_is_an_error_not_a_new_session(SessionStore, redis):
    session = SessionStore()
    session.save()
    redis_key = session._storage.locate(session.session_key)[0]
    redis.delete(redis_key)
    redis.rpush(redis_key, b"x")
    with pytest.raises(Exception, match="WRONGTYPE"):
        SessionStore(session.session_key).load()


def test_unencodable_value_fails_the_save_and_keeps_the_stored_session(SessionStore, redis):
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    session["obj"] = object()
    with pytest.raises(UnencodableSession, match=r"session\['obj'\]"):
        session.save()
    assert SessionStore(key)["x"] == 1
    with pytest.raises(UnencodableSession):
        bad = SessionStore()
        bad["s"] = object()
        bad.save()
    assert redis.dbsize() == 1
