"""Hash mode with field TTLs (Redis 8): HSETEX FXX/FNX, no script, no sweep, and the
mixed fleet (fields of the script layout, and processes still writing it, in the same
buckets). Run on ``SERVER=redis8``; on the other servers, what shows the script layout
is kept there."""

from __future__ import annotations

import time

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils.crypto import get_random_string

from cache_sessions.backend import SessionStore
from cache_sessions.format.codec import HAS_EXPIRY, Codec, is_overflow_pointer
from cache_sessions.storage import buckets, lua
from cache_sessions.storage.buckets import CREATE, UPDATE
from cache_sessions.storage.options import SessionOptions
from cache_sessions.topology import server_facts
from tests.support.configs import HASH, _config
from tests.support.redis_stats import sent_by_clients
from tests.support.servers import standalone

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
TTL = 1_209_600
SERVER = standalone()
SOFTWARE = server_facts.Software(SERVER.family(), SERVER.version())
redis8 = pytest.mark.skipif(not SOFTWARE.compact_field_ttls, reason="field TTLs are Redis 8's (SERVER=redis8)")


@pytest.fixture
def alias(request):
    options = {**HASH, "BUCKETS": 1, **getattr(request, "param", {})}
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(13, **options)}):
        redis = caches["sessions"].client.get_client()
        redis.flushdb()
        storage = SessionStore()._storage
        storage.field_ttls(), storage.inline_limit()  # learnt before anything counts round trips
        yield redis
        redis.flushdb()


def saved(**data) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    return session


def old_process_write(key: str, session: dict, ttl: int, mode: int = UPDATE) -> int:
    """What a process of the previous release sends: the WRITE script, the expiry in the value."""
    storage = SessionStore()._storage
    bucket, field, overflow = storage.locate(key)
    now = int(time.time())
    value = Codec().encode(session, expires_at=now + ttl)
    redis = storage.redis()
    return int(
        redis.evalsha(redis.script_load(lua.WRITE.source), 2, bucket, overflow, field, value, b"", ttl, mode, 0, now)
    )


def field_ttl(redis, key: str) -> int:
    bucket, field, _ = SessionStore()._storage.locate(key)
    return int(redis.httl(bucket, field)[0])


# Which path, and why --------------------------------------------------------------------------


def test_the_server_software_is_read_once_and_decides_the_path(alias):
    storage = SessionStore()._storage
    assert server_facts.software(alias) == SOFTWARE
    assert storage.field_ttls() is SOFTWARE.compact_field_ttls  # Redis 8 yes; Valkey and Redis 7 no
    with sent_by_clients() as sent:
        saved(x=1)
    assert ("hsetex" in sent.commands) is SOFTWARE.compact_field_ttls
    assert ("evalsha" in sent.commands) is not SOFTWARE.compact_field_ttls
    assert "info" not in sent.commands  # learnt once per process


def test_valkey_says_it_is_valkey():
    info = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "9.1.0"}
    assert server_facts._software(info) == server_facts.Software("valkey", (9, 1, 0))
    assert server_facts._software({"redis_version": "8.2.3"}).compact_field_ttls
    assert not server_facts._software({"redis_version": "7.4.2"}).hsetex
    assert server_facts._software(info).hsetex and not server_facts._software(info).compact_field_ttls
    assert server_facts._software({}) == server_facts.UNKNOWN and not server_facts.UNKNOWN.hsetex
    assert server_facts._software({"redis_version": "garbage"}) == server_facts.Software("redis")


@pytest.mark.parametrize("value", ["yes", 1, 0, "", "auto"])
def test_field_ttl_option_is_none_true_or_false(value):
    with pytest.raises(ImproperlyConfigured, match="FIELD_TTL"):
        SessionOptions.from_options({"FIELD_TTL": value})


@pytest.mark.parametrize("alias", [{"FIELD_TTL": False}], indirect=True)
def test_field_ttl_false_keeps_the_script_layout_everywhere(alias):
    session = saved(x=1)
    bucket, field, _ = session._storage.locate(session.session_key)
    assert alias.hget(bucket, field)[0] & HAS_EXPIRY  # the expiry in the value
    assert alias.ttl(bucket) > 0  # the bucket's own TTL
    if SOFTWARE.hsetex:
        assert alias.httl(bucket, field) == [-1]


# The writes -------------------------------------------------------------------------------------


@redis8
def test_a_save_gives_the_field_its_ttl_and_the_value_no_expiry(alias):
    session = saved(x=1)
    bucket, field, _ = session._storage.locate(session.session_key)
    assert TTL - 5 <= field_ttl(alias, session.session_key) <= TTL
    assert not alias.hget(bucket, field)[0] & HAS_EXPIRY  # 4 bytes fewer
    assert alias.ttl(bucket) == -1  # no bucket TTL to keep up: Redis deletes an emptied bucket
    assert alias.object("encoding", bucket) == b"listpackex"
    session.set_expiry(300)
    session["x"] = 2
    session.save()
    assert 295 <= field_ttl(alias, session.session_key) <= 300
    assert SessionStore(session.session_key)["x"] == 2


@redis8
def test_a_save_never_resurrects_a_deleted_or_expired_field(alias):
    session = saved(x=1)
    SessionStore(session.session_key).delete()
    session["x"] = 2
    with pytest.raises(UpdateError):
        session.save()
    bucket, field, _ = session._storage.locate(session.session_key)
    assert not alias.hexists(bucket, field)
    other = saved(x=1)
    bucket, field, _ = other._storage.locate(other.session_key)
    assert alias.hexpireat(bucket, 1, field) == [2]  # its TTL passed: Redis removes it
    other["x"] = 2
    with pytest.raises(UpdateError):
        other.save()
    assert alias.dbsize() == 0  # nothing written back, the emptied bucket gone


@redis8
def test_a_create_retried_after_its_reply_was_lost_succeeds_without_a_second_write(alias):
    storage = SessionStore()._storage
    key = get_random_string(32, KEY_CHARS)
    call = storage.create_call(key, {"x": 1}, 60)
    assert storage.execute(call) is True
    with sent_by_clients() as sent:
        assert storage.execute(call) is True  # the same bytes: this very create, again
    assert sent.round_trips == 2 and sent.commands == {"hsetex": 1, "expire": 1, "hget": 1}
    assert not storage.create(key, {"x": 2}, 60)  # another create of the key: a collision
    assert storage.load(key) == {"x": 1}
    with pytest.raises(CreateError):
        SessionStore(key).save(must_create=True)


@redis8
@pytest.mark.parametrize("alias", [{"HASH_MAX_INLINE": 100}], indirect=True)
def test_a_big_session_goes_under_its_overflow_key_in_the_same_round_trip(alias):
    blob = get_random_string(500)
    with sent_by_clients() as sent:
        session = saved(blob=blob)
    assert (sent.round_trips, sent.commands) == (1, {"set": 1, "hsetex": 1, "expire": 1})
    key = session.session_key
    bucket, field, overflow = session._storage.locate(key)
    assert is_overflow_pointer(alias.hget(bucket, field))
    assert TTL - 5 <= field_ttl(alias, key) <= TTL and TTL - 5 <= alias.ttl(overflow) <= TTL
    assert not alias.get(overflow)[0] & HAS_EXPIRY  # the key's TTL says it
    with sent_by_clients() as sent:
        assert SessionStore(key)["blob"] == blob
    assert (sent.round_trips, sent.commands) == (1, {"hget": 1, "get": 1})
    # A retried create of a big session: still the same bytes, still a success.
    storage = session._storage
    call = storage.create_call("b" * 32, {"blob": blob}, 60)
    assert storage.execute(call) and storage.execute(call)
    assert not storage.create("b" * 32, {"blob": blob + "!"}, 60)
    assert storage.load("b" * 32) == {"blob": blob}
    # Shrinking: the field holds the session again (the old overflow key expires by itself).
    session["blob"] = "short"
    session.save()
    assert SessionStore(key)["blob"] == "short"
    assert not is_overflow_pointer(alias.hget(bucket, field))
    session.delete()
    assert not alias.exists(overflow) and not alias.hexists(bucket, field)


@redis8
def test_a_create_replaces_a_stale_overflow_value_left_without_its_field(alias):
    """Another engine deleted the field but not its overflow key: NX refuses the SET, and the
    create writes its own value over the stale one (one more round trip, then only)."""
    storage = SessionStore()._storage
    key, blob = "s" * 32, get_random_string(500)
    _, _, overflow = storage.locate(key)
    alias.set(overflow, b"stale bytes of a deleted session", ex=60)
    with sent_by_clients() as sent:
        assert storage.create(key, {"blob": blob}, 60)
    assert (sent.round_trips, sent.commands["set"]) == (2, 2)
    assert storage.load(key) == {"blob": blob}
    assert 50 <= alias.ttl(overflow) <= 60


@redis8
@pytest.mark.parametrize("alias", [{"HASH_MAX_INLINE": 100}], indirect=True)
def test_a_refused_big_save_leaves_no_overflow_key_behind(alias):
    session = saved(x=1)
    SessionStore(session.session_key).delete()
    session["blob"] = get_random_string(500)
    with sent_by_clients() as sent, pytest.raises(UpdateError):
        session.save()
    assert sent.round_trips == 2 and sent.commands["del"] == 1
    assert alias.dbsize() == 0


@redis8
def test_each_operation_is_one_round_trip_without_a_script(alias):
    with sent_by_clients() as sent:
        session = saved(x=1)
    assert (sent.round_trips, sent.commands) == (1, {"hsetex": 1, "expire": 1})
    with sent_by_clients() as sent:
        loaded = SessionStore(session.session_key)
        loaded["x"] = 2
        loaded.save()
    assert (sent.round_trips, sent.commands) == (2, {"hget": 1, "hsetex": 1, "expire": 1})
    with sent_by_clients() as sent:
        loaded.delete()
    assert (sent.round_trips, sent.commands) == (1, {"hdel": 1, "del": 1})


# A mixed fleet: the script layout and field TTLs in the same buckets ------------------------------


@redis8
def test_fields_of_the_script_layout_and_field_ttls_are_read_side_by_side(alias):
    old_key, old_expired = get_random_string(32, KEY_CHARS), get_random_string(32, KEY_CHARS)
    assert old_process_write(old_key, {"who": "old"}, 3600, CREATE) == 1
    assert old_process_write(old_expired, {"who": "gone"}, 1, CREATE) == 1
    bucket = SessionStore()._storage.locate(old_key)[0]
    assert 3595 <= alias.ttl(bucket) <= 3600  # the old layout's bucket TTL
    new = saved(who="new")
    # The new field's TTL is past the bucket's: the write raised the bucket's TTL with it.
    assert TTL - 5 <= alias.ttl(bucket) <= TTL and TTL - 5 <= field_ttl(alias, new.session_key) <= TTL
    # An old value's expiry is in its header (by the web server's clock): passed, it reads as missing.
    storage = SessionStore()._storage
    alias.hset(bucket, storage.locate(old_expired)[1], Codec().encode({"who": "gone"}, expires_at=int(time.time()) - 1))
    assert SessionStore(old_key)["who"] == "old"
    assert SessionStore(new.session_key)["who"] == "new"
    assert SessionStore(old_expired).load() == {} and not SessionStore().exists(old_expired)
    # A new process saving an old session gives it a field TTL and drops the header expiry.
    session = SessionStore(old_key)
    session["n"] = 1
    session.save()
    assert TTL - 5 <= field_ttl(alias, old_key) <= TTL
    assert not alias.hget(bucket, storage.locate(old_key)[1])[0] & HAS_EXPIRY
    # A create over an expired leftover of the old layout replaces it.
    assert storage.create(old_expired, {"who": "again"}, 60)
    assert storage.load(old_expired) == {"who": "again"}


@redis8
def test_an_old_process_writing_a_new_field_keeps_it_alive(alias):
    new = saved(who="new")
    key = new.session_key
    bucket, field, _ = new._storage.locate(key)
    # The previous release reads a value without header expiry as alive (Redis hides expired fields).
    assert old_process_write(key, {"who": "old"}, TTL) == 1
    assert alias.httl(bucket, field) == [-1]  # its HSET dropped the field's TTL...
    assert alias.hget(bucket, field)[0] & HAS_EXPIRY  # ...and wrote the expiry into the value
    assert TTL - 5 <= alias.ttl(bucket) <= TTL  # and its EXPIRE NX gave the bucket a TTL
    assert SessionStore(key)["who"] == "old"
    # Back on a new process: the field gets its TTL again.
    session = SessionStore(key)
    session["who"] = "new again"
    session.save()
    assert TTL - 5 <= field_ttl(alias, key) <= TTL
    # The old process's create refuses a live new field (it reads as alive) and its update
    # refuses a deleted one.
    assert old_process_write(key, {"who": "intruder"}, TTL, CREATE) == 0
    session.delete()
    assert old_process_write(key, {"who": "ghost"}, TTL) == 0


@redis8
def test_a_bucket_ttl_set_by_an_old_process_never_ends_before_a_new_field_of_the_same_age(alias):
    """The remaining risk, shown: an old process's EXPIRE NX gives a bucket without TTL its own
    session's TTL. With one session age everywhere (SESSION_COOKIE_AGE), that covers every
    field written before; a shorter-lived session written by an old process does not."""
    long_lived = saved(who="new")
    old_key = get_random_string(32, KEY_CHARS)
    bucket = long_lived._storage.locate(old_key)[0]
    assert old_process_write(old_key, {"who": "old"}, TTL, CREATE) == 1
    assert alias.ttl(bucket) >= field_ttl(alias, long_lived.session_key)
    alias.persist(bucket)
    assert old_process_write(get_random_string(32, KEY_CHARS), {"who": "short"}, 60, CREATE) == 1
    assert alias.ttl(bucket) <= 60 < field_ttl(alias, long_lived.session_key)  # why docs say FIELD_TTL False
    long_lived["n"] = 1
    long_lived.save()  # the next new write to the bucket lifts it again
    assert alias.ttl(bucket) >= field_ttl(alias, long_lived.session_key)


# Hostile values in a field-TTL bucket -----------------------------------------------------------


@redis8
@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\xff" * 5, b"\x1e\xff\xff\xff\xff", b"\x18" + b"\xff" * 100_000])
def test_garbage_in_a_field_with_a_ttl_reads_as_missing_and_is_replaced_by_a_create(alias, garbage):
    key = get_random_string(32, KEY_CHARS)
    storage = SessionStore()._storage
    bucket, field, _ = storage.locate(key)
    alias.hsetex(bucket, field, garbage, ex=60)
    assert SessionStore(key).load() == {}
    session = SessionStore(key)
    session["x"] = 1
    session.save()  # a fresh key: the garbage is left alone
    assert session.session_key != key
    assert alias.hget(bucket, field) == garbage
    assert SessionStore().exists(key)  # garbage counts as existing: a create never overwrites it
    assert not storage.create(key, {"x": 1}, 60)


@redis8
def test_a_huge_expiry_is_bounded(alias):
    session = SessionStore()
    session.set_expiry(10**12)
    session["x"] = 1
    session.save()
    assert 0 < field_ttl(alias, session.session_key) <= 2**32
    assert SessionStore(session.session_key)["x"] == 1


@redis8
def test_a_server_without_hsetex_gets_the_script_and_is_remembered(alias, monkeypatch):
    """A failover to an older replica: the server answers "unknown command"; the write is
    sent again as the script, and this process stops sending HSETEX there."""
    storage = SessionStore()._storage
    real = storage.topology.send

    def old_server(name, attempt, call, *args):
        if call.args[0] == "HSETEX" or any(command[0] == "HSETEX" for command in call.more):
            call = type(call)(("HSETEX-UNKNOWN", *call.args[1:]), call.parse, more=call.more)
        return real(name, attempt, call, *args)

    monkeypatch.setattr(storage.topology, "send", old_server)
    session = saved(x=1)
    assert session.session_key
    assert not storage.field_ttls()
    with sent_by_clients() as sent:
        saved(y=1)
    assert "evalsha" in sent.commands


# What the checks and cleanuprs say ---------------------------------------------------------------


def caches_checks() -> list:
    from django.core.checks import run_checks

    return [message for message in run_checks(tags=["caches"]) if message.id.startswith("cache_sessions")]


@pytest.mark.parametrize("alias", [{"FIELD_TTL": True}, {"FIELD_TTL": False}, {}], indirect=True)
def test_the_checks_say_when_field_ttl_is_forced_against_the_server(alias):
    forced = SessionStore()._storage.options.field_ttl
    ids = [message.id for message in caches_checks()]
    assert ("cache_sessions.W013" in ids) is (forced is True and not SOFTWARE.compact_field_ttls)
    assert ("cache_sessions.I002" in ids) is (forced is False and SOFTWARE.compact_field_ttls)


def cleanuprs(*args: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("cleanuprs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_cleanuprs_sweeps_only_values_of_the_script_layout(alias):
    live = saved(x=1)
    storage = live._storage
    gone = get_random_string(32, KEY_CHARS)
    bucket, field, _ = storage.locate(gone)
    alias.hset(bucket, field, Codec().encode({"x": 1}, expires_at=int(time.time()) - 10))
    out = cleanuprs("--all")
    assert "1 expired removed" in out
    assert ("nothing to sweep" in out) is SOFTWARE.compact_field_ttls
    assert not alias.hexists(bucket, field) and SessionStore(live.session_key)["x"] == 1


def test_cleanuprs_stats_names_the_write_path_and_the_limit_a_session_needs(alias):
    out = cleanuprs("--stats")  # nothing stored: the advice holds all the same
    assert str(SOFTWARE) in out
    assert ("writes: field TTLs" in out) is SOFTWARE.compact_field_ttls
    assert "fit hash-max-listpack-value 256" in out  # the test server's limit (README's)
    alias.config_set("hash-max-ziplist-value", 64)
    try:
        server_facts.forget()
        assert "set hash-max-listpack-value 256" in cleanuprs("--stats")
    finally:
        alias.config_set("hash-max-ziplist-value", 256)


# The async path ---------------------------------------------------------------------------------


def test_the_async_path_learns_the_server_on_the_loop_and_writes_the_same_commands(alias):
    import asyncio
    import threading

    server_facts.forget()

    async def scenario() -> tuple[str, dict, dict]:
        session = SessionStore()
        await session.aset("x", 1)
        await session.asave()
        loaded = SessionStore(session.session_key)
        assert await loaded.aget("x") == 1
        await loaded.aset("x", 2)
        await loaded.asave()
        return session.session_key, await SessionStore(session.session_key).aload(), {}

    with sent_by_clients() as sent:
        key, stored, _ = asyncio.run(scenario())
    assert stored == {"x": 2}
    assert sent.threads == {threading.get_ident()} and sent.asyncio == sent.round_trips  # no thread hop
    assert sent.commands["info"] == 1 and sent.commands["config"] == 1  # learnt once, on the loop
    write = "hsetex" if SOFTWARE.compact_field_ttls else "evalsha"
    assert sent.commands[write] == 2
    if SOFTWARE.compact_field_ttls:
        assert TTL - 5 <= field_ttl(alias, key) <= TTL


# One round trip per load, whatever the server's limit --------------------------------------------


def test_loads_fetch_the_overflow_key_with_the_field_where_overflow_is_likely(alias):
    blob = get_random_string(150)
    alias.config_set("hash-max-ziplist-value", 64)  # Redis's default: a session with a cart overflows
    try:
        server_facts.forget()
        big = saved(blob=blob)  # the write learns the limit
        key = big.session_key
        bucket, field, _ = big._storage.locate(key)
        assert is_overflow_pointer(alias.hget(bucket, field))
        with sent_by_clients() as sent:
            assert SessionStore(key)["blob"] == blob
        assert (sent.round_trips, sent.commands) == (1, {"hget": 1, "get": 1})
    finally:
        alias.config_set("hash-max-ziplist-value", 256)
    server_facts.forget()
    storage = big._storage
    assert storage.inline_limit() == 256 and storage.pointer_share < buckets.OVERFLOW_LIKELY_SHARE
    with sent_by_clients() as sent:  # a tuned server, few pointers met so far: a plain HGET first
        assert SessionStore(key)["blob"] == blob
    assert (sent.round_trips, sent.commands) == (2, {"hget": 1, "get": 1})
    while storage.pointer_share < buckets.OVERFLOW_LIKELY_SHARE:  # pointers met often: fetched with the field
        SessionStore(key).load()
    with sent_by_clients() as sent:
        assert SessionStore(key)["blob"] == blob
    assert (sent.round_trips, sent.commands) == (1, {"hget": 1, "get": 1})
    for _ in range(3 * buckets.RECENT_LOADS):  # ...until loads stop meeting them
        SessionStore(saved(x=1).session_key).load()
    assert not storage.overflow_likely()


def test_a_bucket_name_taken_by_another_type_fails_every_operation_loudly(alias):
    from cache_sessions.errors import SessionStoreError

    session = saved(x=1)
    bucket = session._storage.locate(session.session_key)[0]
    alias.delete(bucket)
    alias.rpush(bucket, b"not a bucket")
    session["x"] = 2
    for operation in (session.save, lambda: saved(y=1), lambda: SessionStore().delete(session.session_key)):
        with pytest.raises(SessionStoreError, match="WRONGTYPE"):
            operation()
    assert alias.lrange(bucket, 0, -1) == [b"not a bucket"]  # nothing written beside it


def test_an_error_reply_in_a_round_trip_leaves_the_connection_in_step(alias):
    """A save whose HSETEX is refused (WRONGTYPE) while the EXPIRE after it answers: both replies
    are read before the error is raised, so the next operation on the same pooled connection
    reads its own replies (sync, then on redis.asyncio)."""
    import asyncio

    from cache_sessions.errors import SessionStoreError

    session = saved(x=1)
    bucket = session._storage.locate(session.session_key)[0]
    alias.delete(bucket)
    alias.rpush(bucket, b"not a bucket")
    session["x"] = 2
    before = alias.client_id()  # the pool's one connection, which the save takes next
    with pytest.raises(SessionStoreError, match="WRONGTYPE"):
        session.save()
    assert alias.echo(b"in step") == b"in step"  # not the EXPIRE's reply left unread
    assert alias.client_id() == before  # the connection was kept, not dropped

    async def scenario() -> None:
        with pytest.raises(SessionStoreError, match="WRONGTYPE"):
            await session.asave()
        alias.delete(bucket)
        fresh = SessionStore()
        await fresh.aset("z", 3)
        await fresh.asave()
        assert await SessionStore(fresh.session_key).aget("z") == 3

    asyncio.run(scenario())


def test_an_async_save_cancelled_while_it_waits_for_its_replies_leaves_no_reply_behind(alias):
    """A task cancelled between the write of its commands and their replies (the server paused)
    must not hand those replies to the next operation on the loop's pool."""
    import asyncio

    session = saved(x=1)

    async def scenario() -> None:
        loaded = SessionStore(session.session_key)
        assert await loaded.aget("x") == 1  # the loop's pool has its connection
        loaded["x"] = 2
        alias.client_pause(2000, all=False)  # writes wait: the save's replies do not come
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loaded.asave(), 0.2)
        finally:
            alias.client_unpause()
        other = SessionStore()
        await other.aset("y", 3)
        await other.asave()
        assert await SessionStore(other.session_key).aget("y") == 3
        assert await SessionStore(session.session_key).aget("x") in (1, 2)

    asyncio.run(scenario())


@redis8
def test_an_old_value_that_expires_between_its_load_and_its_save_is_not_saved_again(alias, monkeypatch):
    """HSETEX FXX knows nothing of the expiry in an old value's header: the load remembers it
    for the save, which refuses (and removes the field) as the script would."""
    key = get_random_string(32, KEY_CHARS)
    assert old_process_write(key, {"who": "old"}, 60, CREATE) == 1
    session = SessionStore(key)
    assert session["who"] == "old"  # loaded while alive
    session["n"] = 1
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)  # the request outlived the session
    with pytest.raises(UpdateError):
        session.save()
    monkeypatch.undo()
    bucket, field, _ = session._storage.locate(key)
    assert not alias.hexists(bucket, field)
    # Loaded and saved in time: saved, with a field TTL.
    assert old_process_write(key, {"who": "old"}, 60, CREATE) == 1
    session = SessionStore(key)
    session["n"] = 1
    session.save()
    assert TTL - 5 <= field_ttl(alias, key) <= TTL


def test_field_ttl_true_tries_hsetex_on_a_server_info_does_not_describe(alias):
    """INFO refused (an ACL): automatic keeps the script; FIELD_TTL=True tries HSETEX, and a
    server without it answers "unknown command" and gets the script."""
    facts = server_facts.of(alias)
    facts.software = server_facts.UNKNOWN
    assert not server_facts.field_ttls(alias, None)
    assert server_facts.field_ttls(alias, True)
    assert not server_facts.field_ttls(alias, False)
    facts.software = server_facts.Software("redis", (7, 0, 15))
    assert not server_facts.field_ttls(alias, True)
