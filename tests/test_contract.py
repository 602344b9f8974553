"""The Django session-backend contract, on every configuration, sync and async."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.utils import timezone

from cache_sessions.format.codec import read_header
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db(databases=[])


def redis_key(store: Any) -> bytes:
    """The session's own key, or its bucket."""
    return store._storage.locate(store.session_key)[0]


def stored_ttl(store: Any, redis: Any) -> int:
    """The session's time to live in Redis: its key's TTL, or, in hash mode, the expiry in
    its value's header (the bucket lives at least that long: checked here too) or, with
    field TTLs, its field's TTL."""
    location = store._storage.locate(store.session_key)
    if len(location) == 1:
        return int(redis.ttl(location[0]))
    expires_at = read_header(redis.hget(location[0], location[1]))[2]
    if expires_at is None:  # field TTLs (Redis 8): the field's own TTL, and no bucket TTL to keep up
        return int(redis.httl(location[0], location[1])[0])
    ttl = round(expires_at - time.time())
    assert redis.ttl(location[0]) >= ttl - 1
    return ttl


def test_new_session_is_stored_with_cookie_age_ttl(SessionStore, redis, use_tz):
    session = SessionStore()
    session["user"] = "alice"
    session.save()
    assert len(session.session_key) == 32
    ttl = stored_ttl(session, redis)
    assert settings.SESSION_COOKIE_AGE - 5 <= ttl <= settings.SESSION_COOKIE_AGE


def test_values_round_trip(SessionStore):
    values = {
        "str": "héllo",
        "int": 2**40,
        "neg": -3,
        "float": 1.5,
        "bool": True,
        "none": None,
        "list": [1, "two", [3]],
        "tuple": (1, 2),
        "nested": {"a": {"b": [1, {"c": None}]}},
        "bytes": b"\x00\xff",
        "aware": datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=datetime.UTC),
        "big": "x" * 5000,
    }
    session = SessionStore()
    session.update(values)
    session.save()
    loaded = SessionStore(session.session_key)
    assert dict(loaded.items()) == {**values, "tuple": [1, 2]}


def test_load_of_unknown_key_is_empty_and_does_not_create(SessionStore, redis):
    session = SessionStore("a" * 32)
    assert session.load() == {}
    assert session.session_key is None
    assert redis.dbsize() == 0


def test_save_updates_and_refreshes_ttl(SessionStore, redis):
    session = SessionStore()
    session["n"] = 1
    session.save()
    redis.expire(redis_key(session), 10)
    again = SessionStore(session.session_key)
    again["n"] += 1
    again.save()
    assert SessionStore(session.session_key)["n"] == 2
    assert stored_ttl(session, redis) > 10


def test_save_does_not_resurrect_a_session_deleted_elsewhere(SessionStore, redis):
    session = SessionStore()
    session["cart"] = [1]
    session.save()
    key = session.session_key
    other = SessionStore(key)
    assert other["cart"] == [1]  # loaded by this request
    SessionStore(key).delete()  # logged out in another tab
    other["cart"] = [1, 2]
    with pytest.raises(UpdateError):
        other.save()
    assert not SessionStore().exists(key)
    assert redis.dbsize() == 0


def test_save_without_a_load_of_a_vanished_session_raises_update_error(SessionStore, redis):
    session = SessionStore()
    session.save()
    SessionStore().delete(session.session_key)
    with pytest.raises(UpdateError):
        SessionStore(session.session_key).save()
    assert redis.dbsize() == 0


def test_fractional_expiry_is_accepted(SessionStore, redis):
    session = SessionStore()
    session.set_expiry(300.5)
    session.save()
    assert 295 <= stored_ttl(session, redis) <= 300


def test_expiry_beyond_2106_is_stored(SessionStore):
    session = SessionStore()
    session["x"] = 1
    session.set_expiry(datetime.datetime(2300, 1, 1, tzinfo=datetime.UTC))
    session.save()
    assert SessionStore(session.session_key)["x"] == 1


def test_must_create_on_a_taken_key_raises_create_error(SessionStore):
    session = SessionStore()
    session["owner"] = "first"
    session.save()
    twin = SessionStore(session.session_key)
    twin["owner"] = "second"
    with pytest.raises(CreateError):
        twin.save(must_create=True)
    assert SessionStore(session.session_key)["owner"] == "first"


def test_create_sent_twice_succeeds_twice(SessionStore):
    """What makes a create retried after a lost reply succeed: the key holds, byte for
    byte, what this very create writes (two creators never pick the same 165-bit key)."""
    storage = SessionStore()._storage
    key = SessionStore()._get_new_session_key()
    call = storage.create_call(key, {"x": 1}, 60)
    assert storage.execute(call) is True
    assert storage.execute(call) is True  # the retry: same bytes, same key
    assert storage.execute(storage.create_call(key, {"x": 2}, 60)) is False
    assert SessionStore(key)["x"] == 1


def test_create_overwrites_nothing_and_marks_modified(SessionStore):
    session = SessionStore()
    session.create()
    assert session.modified
    assert session.exists(session.session_key)
    assert SessionStore(session.session_key).load() == {}


def test_exists_and_delete(SessionStore):
    session = SessionStore()
    session.save()
    key = session.session_key
    assert session.exists(key)
    session.delete()
    assert not session.exists(key)
    session.delete()  # deleting twice is fine
    SessionStore().delete()  # no key at all: nothing to do


def test_delete_by_key(SessionStore):
    session = SessionStore()
    session.save()
    SessionStore().delete(session.session_key)
    assert not SessionStore().exists(session.session_key)


def test_flush_removes_data_and_key(SessionStore):
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    session.flush()
    assert session.session_key is None
    assert not SessionStore().exists(key)


def test_cycle_key_keeps_data_under_a_new_key(SessionStore):
    session = SessionStore()
    session["x"] = 1
    session.save()
    old = session.session_key
    session.cycle_key()
    session.save()
    assert session.session_key != old
    assert not SessionStore().exists(old)
    assert SessionStore(session.session_key)["x"] == 1


def test_expiry_in_the_past_leaves_nothing(SessionStore, redis, use_tz):
    session = SessionStore()
    session["x"] = 1
    session.set_expiry(-datetime.timedelta(seconds=10))
    session.save()
    assert SessionStore(session.session_key).load() == {}
    assert redis.dbsize() == 0


def test_expired_existing_session_is_deleted_on_save(SessionStore, redis):
    session = SessionStore()
    session.save()
    session.set_expiry(timezone.now() - datetime.timedelta(seconds=1))
    session.save()
    assert redis.dbsize() == 0


@pytest.mark.parametrize("expiry", [60, datetime.timedelta(seconds=60)], ids=["int", "timedelta"])
def test_custom_expiry_sets_ttl(SessionStore, redis, use_tz, expiry):
    session = SessionStore()
    session.set_expiry(expiry)
    session.save()
    assert 55 <= stored_ttl(session, redis) <= 60
    assert 55 <= SessionStore(session.session_key).get_expiry_age() <= 60


def test_browser_length_session_uses_cookie_age(SessionStore, redis):
    session = SessionStore()
    session.set_expiry(0)
    session.save()
    assert stored_ttl(session, redis) > settings.SESSION_COOKIE_AGE - 5
    assert SessionStore(session.session_key).get_expire_at_browser_close()


def test_clear_expired_is_a_no_op_in_string_mode(SessionStore, redis):
    session = SessionStore()
    session.save()
    SessionStore.clear_expired()
    assert redis.dbsize() == 1


@pytest.mark.parametrize(
    "cookie",
    ["", "short", "ABCDEFGHIJKLMNOP", "a" * 31 + ":", "../../etc/passwd", "a" * 129, "a b c d e f", "ключключключ"],
)
def test_malformed_cookie_keys_never_reach_redis(SessionStore, redis, cookie):
    with sent_by_clients() as sent:
        session = SessionStore(cookie)
        assert session.session_key is None
        assert session.load() == {}
        assert not session.exists(cookie)
        session.delete(cookie)
    assert sent.round_trips == 0


# Async twins -----------------------------------------------------------------


async def test_async_life_cycle(SessionStore, use_tz):
    session = SessionStore()
    await session.aset("x", 1)
    await session.asave()
    key = session.session_key
    assert await session.aexists(key)
    loaded = SessionStore(key)
    assert await loaded.aget("x") == 1
    await loaded.aset("x", 2)
    await loaded.asave()
    assert await SessionStore(key).aget("x") == 2
    await loaded.acycle_key()
    assert not await session.aexists(key)
    await loaded.aflush()
    assert loaded.session_key is None
    await SessionStore.aclear_expired()


async def test_async_save_does_not_resurrect(SessionStore):
    session = SessionStore()
    await session.asave()
    other = SessionStore(session.session_key)
    assert list(await other.akeys()) == []  # loaded by this request
    await session.adelete()
    await other.aset("x", 1)
    with pytest.raises(UpdateError):
        await other.asave()


async def test_async_create_collision(SessionStore):
    session = SessionStore()
    await session.acreate()
    twin = SessionStore(session.session_key)
    twin["x"] = "different"
    with pytest.raises(CreateError):
        await twin.asave(must_create=True)
