"""``cleanuprs``, ``clearsessions`` and ``clear_expired`` in hash mode."""

from __future__ import annotations

import dataclasses
import time
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils.crypto import get_random_string

from cache_sessions.backend import SessionStore
from cache_sessions.format.codec import Codec
from tests.support.configs import HASH, STRING, _config

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def sampled_buckets(redis):
    """A HASH_KEYS_CHECK_FOR_EXPIRY: every bucket, like the old ``lambda r: r.keys()``."""
    return [key for key in redis.keys(b"*h{*}") if redis.type(key) == b"hash"]


@pytest.fixture
def hash_alias(request):
    options = {**HASH, "BUCKETS": 32, **getattr(request, "param", {})}
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(15, **options)}):
        redis = caches["sessions"].client.get_client()
        yield redis
        redis.flushdb()


def populate(live: int, expired: int) -> list[str]:
    """``live`` sessions and ``expired`` ones left behind in their buckets; returns the live keys."""
    keys = []
    for _ in range(live):
        session = SessionStore()
        session["x"] = 1
        session.save()
        keys.append(session.session_key)
    storage = SessionStore()._storage
    codec, past = Codec(), int(time.time()) - 10
    for _ in range(expired):  # written last, so no write sweeps them first
        bucket, field, _ = storage.locate(get_random_string(32, KEY_CHARS))
        storage.redis().hset(bucket, field, codec.encode({"x": 1}, expires_at=past))
    return keys


def fields(redis) -> int:
    return sum(redis.hlen(key) for key in redis.keys(b"*h{*}") if redis.type(key) == b"hash")


def cleanuprs(*args: str) -> str:
    out = StringIO()
    call_command("cleanuprs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_all_removes_every_expired_session_and_keeps_the_live_ones(hash_alias):
    live = populate(live=40, expired=60)
    output = cleanuprs("--alias", "sessions", "--all")
    assert "60 expired removed" in output
    assert "100 fields seen" in output
    assert fields(hash_alias) == 40
    assert all(SessionStore().exists(key) for key in live)


def test_dry_run_counts_and_removes_nothing(hash_alias):
    populate(live=5, expired=7)
    assert "7 expired would remove" in cleanuprs("--all", "--dry-run")
    assert fields(hash_alias) == 12


def test_sample_sweeps_only_some_buckets(hash_alias):
    populate(live=0, expired=200)
    output = cleanuprs("--sample", "4")
    assert output.startswith("4 buckets scanned")
    assert 0 < 200 - fields(hash_alias) < 200


@pytest.mark.parametrize(
    "hash_alias",
    [
        {"HASH_KEYS_CHECK_FOR_EXPIRY": sampled_buckets},
        {"HASH_KEYS_CHECK_FOR_EXPIRY": "tests.test_cleanup.sampled_buckets"},
    ],
    indirect=True,
)
def test_hash_keys_check_for_expiry_chooses_the_buckets(hash_alias):
    populate(live=3, expired=30)
    assert "30 expired removed" in cleanuprs()
    assert fields(hash_alias) == 3


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 1}], indirect=True)
def test_batch_size_bounds_each_call(hash_alias):
    hash_alias.config_set("hash-max-ziplist-entries", 16)  # a hashtable bucket: HSCAN pages for real
    try:
        populate(live=10, expired=300)
        output = cleanuprs("--all", "--batch-size", "20")
    finally:
        hash_alias.config_set("hash-max-ziplist-entries", 512)
    assert "300 expired removed" in output
    calls = int(output.split("(")[1].split(" calls")[0])
    assert calls >= 310 // 40  # HSCAN COUNT is a hint, but pages stay near it


def test_max_seconds_stops_early(hash_alias):
    populate(live=0, expired=100)
    output = cleanuprs("--all", "--max-seconds", "0")
    assert "stopped at --max-seconds" in output


def test_a_session_refreshed_after_the_scan_survives(hash_alias):
    [key] = populate(live=1, expired=0)
    storage = SessionStore()._storage
    bucket, field, _ = storage.locate(key)
    hash_alias.hset(bucket, field, Codec().encode({"x": 1}, expires_at=int(time.time()) - 1))
    assert "1 expired would remove" in cleanuprs("--all", "--dry-run")  # what a scan saw...
    assert storage.create(key, {"x": 2}, 60)  # ...then a write landed on that field
    assert "0 expired removed" in cleanuprs("--all")
    assert storage.load(key) == {"x": 2}


def test_stats(hash_alias):
    populate(live=20, expired=0)
    output = cleanuprs("--stats")
    assert "sessions (fields): 20" in output
    assert "bucket encodings: listpack" in output or "bucket encodings: ziplist" in output
    assert "bytes per session" in output


def test_clear_expired_and_clearsessions_sweep_everything(hash_alias):
    populate(live=2, expired=20)
    SessionStore.clear_expired()
    assert fields(hash_alias) == 2
    populate(live=0, expired=5)
    call_command("clearsessions")
    assert fields(hash_alias) == 2


async def test_aclear_expired(hash_alias):
    from asgiref.sync import sync_to_async

    await sync_to_async(populate)(live=1, expired=5)
    await SessionStore.aclear_expired()
    assert await sync_to_async(fields)(hash_alias) == 1


def test_string_mode_has_nothing_to_sweep():
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(15, **STRING)}):
        assert "nothing to sweep" in cleanuprs("--alias", "sessions")


def test_a_bad_alias_is_a_command_error():
    with pytest.raises(CommandError, match="no cache alias 'nope'"):
        cleanuprs("--alias", "nope")


@pytest.mark.parametrize("hash_alias", [{"HASH_MAX_INLINE": 40, "COMPRESS_LIB": ""}], indirect=True)
def test_stats_count_overflow_keys(hash_alias):
    session = SessionStore()
    session["blob"] = get_random_string(200)
    session.save()
    populate(live=3, expired=0)
    output = cleanuprs("--stats")
    assert "overflow keys (sessions too big for a bucket): 1" in output


def random_keys(redis):
    """django-redisession's default HASH_KEYS_CHECK_FOR_EXPIRY: 100 x RANDOMKEY (duplicates and all)."""
    return [redis.randomkey() for _ in range(100)]


@pytest.mark.parametrize("hash_alias", [{"HASH_KEYS_CHECK_FOR_EXPIRY": random_keys}], indirect=True)
def test_a_sweep_never_touches_data_outside_the_session_namespace(hash_alias):
    """Hashes of the app and of django-redis's cache.hset, whose values happen to look like
    expired sessions, in the same DB as the sessions: RANDOMKEY finds them, the sweep must not."""
    expired_looking = Codec().encode({"x": 1}, expires_at=int(time.time()) - 10)
    hash_alias.hset("app:stats", mapping={"a": expired_looking, "b": expired_looking})
    hash_alias.hset(":1:cache-hash", "f", expired_looking)  # where django-redis's cache.hset writes
    hash_alias.hset(":r1:h{1}", "f", expired_looking)  # app records (bucket_*) are not sessions either
    populate(live=2, expired=20)
    for _ in range(5):
        cleanuprs()
    assert hash_alias.hlen("app:stats") == 2
    assert hash_alias.hlen(":1:cache-hash") == 1
    assert hash_alias.hlen(":r1:h{1}") == 1
    call_command("cleanuprs", "--all", stdout=StringIO())
    assert hash_alias.hlen("app:stats") == 2
    assert fields(hash_alias) == 2 + 1  # the live sessions, and the record bucket untouched


def test_sample_buckets_are_deduplicated_and_filtered(hash_alias):
    from cache_sessions.storage.sweep import sample_buckets

    populate(live=1, expired=0)
    storage = SessionStore()._storage
    bucket = storage.locate("a" * 32)[0]
    chosen = [bucket, bucket.decode(), b"elsewhere", bucket + b":overflow", ":s1:h{zz}", bucket]
    storage.options = dataclasses.replace(storage.options, hash_keys_check_for_expiry=lambda redis: chosen)
    assert sample_buckets(storage, 100) == [bucket]


def test_clear_expired_reports_an_outage_as_unavailable():
    from cache_sessions.errors import SessionStoreUnavailable
    from cache_sessions.testing import free_port

    dead = {**_config(15), "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    with override_settings(CACHES={"default": LOCMEM, "sessions": dead}), pytest.raises(SessionStoreUnavailable):
        SessionStore.clear_expired()
