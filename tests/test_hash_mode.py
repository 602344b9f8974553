"""What hash mode adds: buckets, expiry inside values, overflow keys, bucket TTLs.

The tests of the script layout (the expiry in the value, the bucket's TTL, sweeps)
pin ``FIELD_TTL: False``, so they run on Redis 8 too; field TTLs: test_field_ttls.py.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.core.cache import caches
from django.test import override_settings
from django.utils.crypto import get_random_string
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from cache_sessions.backend import SessionStore
from cache_sessions.format.codec import Codec
from cache_sessions.storage import buckets
from cache_sessions.storage.bucket_names import bucket_number, digest
from tests.support.configs import HASH, _config
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
COMPACT = {b"listpack", b"ziplist", b"listpackex"}  # listpackex: Redis 8's, with field TTLs
SCRIPTS = {"FIELD_TTL": False}  # the script layout, on every server


@pytest.fixture
def hash_alias(request):
    options = getattr(request, "param", {})
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(14, **{**HASH, **options})}):
        redis = caches["sessions"].client.get_client()
        yield redis
        redis.flushdb()


def new_session(**data) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    return session


def store_raw(session_key: str, session: dict, expires_at: int) -> None:
    """Put a value in its field the way an earlier write would have."""
    storage = SessionStore()._storage
    bucket, field, _ = storage.locate(session_key)
    storage.redis().hset(bucket, field, Codec().encode(session, expires_at=expires_at))


def test_a_session_is_a_field_of_its_bucket(hash_alias):
    session = new_session(x=1)
    bucket, field, _ = session._storage.locate(session.session_key)
    assert bucket == b":s1:h{%x}" % (zlib.crc32(session.session_key.encode()) % 16384)
    assert field == digest(session.session_key) and len(field) == 12
    assert hash_alias.hlen(bucket) == 1
    assert hash_alias.object("encoding", bucket) in COMPACT
    assert session.session_key.encode() not in b"".join(hash_alias.keys())  # Redis never holds the key itself


def test_default_generators_accept_every_django_key_and_spread_evenly():
    counts = Counter(bucket_number(get_random_string(32, KEY_CHARS), 64) for _ in range(64_000))
    assert len(counts) == 64
    assert min(counts.values()) > 800 and max(counts.values()) < 1200  # expected 1000 each
    for key in ("12345678", "z" * 128, "0" * 32):
        assert len(digest(key)) == 12


def test_expired_field_reads_as_missing(hash_alias):
    key = get_random_string(32, KEY_CHARS)
    store_raw(key, {"x": 1}, expires_at=int(time.time()) - 1)
    assert SessionStore(key).load() == {}
    assert not SessionStore().exists(key)


def test_create_overwrites_an_expired_leftover(hash_alias):
    key = get_random_string(32, KEY_CHARS)
    store_raw(key, {"old": 1}, expires_at=int(time.time()) - 1)
    storage = SessionStore()._storage
    assert storage.create(key, {"new": 1}, 60)
    assert not storage.create(key, {"newer": 1}, 60)  # now a live one is there
    assert storage.load(key) == {"new": 1}


@pytest.mark.parametrize("hash_alias", [SCRIPTS], indirect=True)
def test_update_of_an_expired_field_raises_and_removes_it(hash_alias):
    session = new_session(x=1)
    key = session.session_key
    store_raw(key, {"x": 1}, expires_at=int(time.time()) - 1)
    session["x"] = 2
    with pytest.raises(UpdateError):
        session.save()
    bucket, field, _ = session._storage.locate(key)
    assert not hash_alias.hexists(bucket, field)


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 1, **SCRIPTS}], indirect=True)
def test_bucket_ttl_is_raised_never_lowered(hash_alias):
    long = SessionStore()
    long.set_expiry(5000)
    long.save()
    bucket = long._storage.locate(long.session_key)[0]
    assert 4990 <= hash_alias.ttl(bucket) <= 5000
    short = SessionStore()
    short.set_expiry(100)
    short.save()
    assert 4990 <= hash_alias.ttl(bucket) <= 5000
    longer = SessionStore()
    longer.set_expiry(9000)
    longer.save()
    assert 8990 <= hash_alias.ttl(bucket) <= 9000


def test_expiry_in_the_past_sends_nothing_to_the_bucket(hash_alias):
    session = SessionStore()
    session.set_expiry(-10)
    session.save()
    assert hash_alias.dbsize() == 0


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 1, "HASH_MAX_INLINE": 100, **SCRIPTS}], indirect=True)
def test_a_big_session_moves_to_an_overflow_key_and_back(hash_alias):
    small = new_session(x=1)
    blob = get_random_string(500)
    session = new_session(blob=blob)
    bucket, field, overflow = session._storage.locate(session.session_key)
    assert len(hash_alias.hget(bucket, field)) == 5  # a pointer: header + expiry
    assert 0 < hash_alias.ttl(overflow) <= 1209600
    assert hash_alias.object("encoding", bucket) in COMPACT
    with sent_by_clients() as sent:
        assert SessionStore(session.session_key)["blob"] == blob
    # The limit (100 bytes) makes overflow likely: the GET of the overflow key goes with the HGET.
    assert (sent.round_trips, sent.commands) == (1, {"hget": 1, "get": 1})
    session["blob"] = "short"
    session.save()
    assert not hash_alias.exists(overflow)
    assert SessionStore(session.session_key)["blob"] == "short"
    session["blob"] = get_random_string(500)
    session.save()
    session.delete()
    assert not hash_alias.exists(overflow)
    assert hash_alias.hkeys(bucket) == [small._storage.locate(small.session_key)[1]]


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 4}], indirect=True)
def test_buckets_stay_compact_with_a_mix_of_small_and_large_sessions(hash_alias):
    for index in range(200):
        new_session(n=index, blob=get_random_string(3000 if index % 10 == 0 else 10))
    storage = SessionStore()._storage
    names = [storage.prefix + b"h{%x}" % number for number in range(4)]
    assert {hash_alias.object("encoding", name) for name in names} <= COMPACT
    assert sum(hash_alias.hlen(name) for name in names) == 200


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 1, **SCRIPTS}], indirect=True)
def test_writes_sweep_their_bucket_now_and_then(hash_alias, monkeypatch):
    past = int(time.time()) - 1
    for _ in range(50):
        store_raw(get_random_string(32, KEY_CHARS), {"x": 1}, expires_at=past)
    bucket = SessionStore()._storage.locate("a" * 32)[0]
    monkeypatch.setattr(buckets, "SWEEP_ONE_WRITE_IN", 1)  # every write sweeps (64 fields at most)
    new_session(x=1)
    assert hash_alias.hlen(bucket) == 1


@pytest.mark.parametrize("hash_alias", [{"BUCKETS": 1, **SCRIPTS}], indirect=True)
def test_sweep_work_per_write_is_bounded(hash_alias, monkeypatch):
    past = int(time.time()) - 1
    for _ in range(300):
        store_raw(get_random_string(32, KEY_CHARS), {"x": 1}, expires_at=past)
    monkeypatch.setattr(buckets, "SWEEP_ONE_WRITE_IN", 1)
    new_session(x=1)
    bucket = SessionStore()._storage.locate("a" * 32)[0]
    remaining = hash_alias.hlen(bucket)
    assert 300 - buckets.SWEEP_FIELDS <= remaining - 1 < 300


# The bucketed API of the client, for app records ------------------------------


def test_client_bucket_api(hash_alias):
    client = caches["sessions"].client
    assert client.bucket_get("rate:alice") is None
    assert client.bucket_add("rate:alice", {"hits": 1}, 60)
    assert not client.bucket_add("rate:alice", {"hits": 9}, 60)
    assert client.bucket_get("rate:alice") == {"hits": 1}
    assert client.bucket_replace("rate:alice", {"hits": 2}, 60)
    assert client.bucket_exists("rate:alice")
    assert client.bucket_set("rate:alice", {"hits": 3}, 60)
    assert client.bucket_get("rate:alice") == {"hits": 3}
    client.bucket_delete("rate:alice")
    assert not client.bucket_exists("rate:alice")
    assert not client.bucket_replace("rate:alice", {"hits": 4}, 60)
    assert client.bucket_get("rate:alice", default={}) == {}
    client.bucket_set("x", {"a": 1}, 60)
    assert all(key.startswith(b":r1:") for key in hash_alias.scan_iter())  # apart from sessions (":s1:")


def test_client_bucket_api_timeouts(hash_alias):
    client = caches["sessions"].client
    assert client.bucket_set("t", {"a": 1}, 0.2)  # a float: whole seconds, rounded up
    assert client.bucket_get("t") == {"a": 1}
    assert client.bucket_set("t", {"a": 1}, 0) is False  # 0 or less: the record is gone, nothing stored
    assert client.bucket_get("t") is None
    assert client.bucket_add("t", {"a": 1}, -5) is False
    assert client.bucket_get("t") is None
    for timeout in (None, "60", float("inf"), float("nan"), True):
        with pytest.raises(TypeError, match="timeout"):
            client.bucket_set("t", {"a": 1}, timeout)
    for key in (None, 42, b"bytes", ""):
        with pytest.raises(TypeError, match="key"):
            client.bucket_set(key, {"a": 1}, 60)
    with pytest.raises(TypeError, match="mapping"):
        client.bucket_set("t", ["not", "a", "dict"], 60)
    assert client.bucket_get("t") is None


@pytest.mark.parametrize("hash_alias", [{"KEY_GENERATOR": "tests.test_hash_mode.session_keys_only"}], indirect=True)
def test_client_bucket_api_ignores_the_session_key_generators(hash_alias):
    """Record keys are any str: they never go through generators written for session keys."""
    client = caches["sessions"].client
    assert client.bucket_set("rate:alice@example.com", {"hits": 1}, 60)
    assert client.bucket_get("rate:alice@example.com") == {"hits": 1}


def session_keys_only(session_key: str) -> bytes:
    if not session_key.isalnum():
        raise ValueError("a session key generator expects [a-z0-9]")
    return session_key.encode()


def test_scripts_are_reloaded_after_script_flush(hash_alias):
    session = new_session(x=1)
    hash_alias.script_flush()
    session["x"] = 2
    session.save()
    assert SessionStore(session.session_key)["x"] == 2


def test_a_pool_with_client_side_caching_carries_calls_of_several_commands(hash_alias):
    """redis-py's client-side cache (RESP3, ``cache_config``) hands out connections that wrap
    the real one (``CacheProxyConnection``): a load that fetches the overflow key with its
    field (one packed write of two commands) and every write go through them unchanged."""
    from redis.cache import CacheConfig

    pool_kwargs = {"connection_class": Connection, "protocol": 3, "cache_config": CacheConfig()}
    config = _config(14, **HASH, HASH_MAX_INLINE=64, CONNECTION_POOL_KWARGS=pool_kwargs)
    config["LOCATION"] += "?client_name=client-side-cache"  # a pool of its own (django-redis keeps one per URL)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        client = caches["sessions"].client.get_client()
        try:
            client.ping()
        except RedisConnectionError as exc:  # where redis-py refuses to cache on this server
            pytest.skip(str(exc))
        connection = client.connection_pool.get_connection()
        client.connection_pool.release(connection)
        assert type(connection).__name__ == "CacheProxyConnection"
        session = new_session(small=1)
        big = new_session(blob=get_random_string(300))  # an overflow key, loaded with its field
        assert SessionStore()._storage.overflow_likely()
        assert SessionStore(session.session_key)["small"] == 1
        assert SessionStore(big.session_key)["blob"] == big["blob"]
        session["small"] = 2
        session.save()
        assert SessionStore(session.session_key)["small"] == 2
