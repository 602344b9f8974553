"""Configuration: options, aliases, the raw client, key namespace, system checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from redis import Redis

import cache_sessions
from cache_sessions.backend import SessionStore
from cache_sessions.client import SessionClient
from cache_sessions.storage.registry import sessions_for
from cache_sessions.topology import server_facts as facts
from tests.support.configs import CONFIGS, STRING, STRING_CONFIGS, _config
from tests.support.partitions import raw

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def sessions_alias(**options: Any) -> override_settings:
    return override_settings(CACHES={"default": LOCMEM, "sessions": _config(13, **options)})


@pytest.fixture(autouse=True)
def _flush_db13():
    yield
    Redis.from_url(_config(13)["LOCATION"]).flushdb()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"BUCKETS": 0}, "OPTIONS['BUCKETS'] must be an int >= 1"),
        ({"HASH_MAX_INLINE": 2}, "OPTIONS['HASH_MAX_INLINE'] must be an int >= 5"),
        ({"HASH_KEY_GENERATOR": "no.such.function"}, "OPTIONS['HASH_KEY_GENERATOR']: cannot import"),
        ({"COMPRESS_LIB": "nonexistent_lib"}, "OPTIONS['COMPRESS_LIB'] = 'nonexistent_lib'"),
        ({"COMPRESS_LIB": "json"}, "no compress()/decompress()"),
        ({"COMPRESS_MIN_LENGTH": "400"}, "COMPRESS_MIN_LENGTH'] must be an int"),
        ({"COMPRESS_MIN_LENGTH": -1}, "COMPRESS_MIN_LENGTH'] must be an int"),
        ({"KEY_GENERATOR": "no.such.function"}, "OPTIONS['KEY_GENERATOR']: cannot import"),
        ({"KEY_GENERATOR": 42}, "must be a callable"),
        ({"MAX_SESSION_BYTES": 0}, "OPTIONS['MAX_SESSION_BYTES'] must be an int >= 1"),
        ({"RETRY": -1}, "OPTIONS['RETRY'] must be an int >= 0 or a redis.retry.Retry"),
        ({"RETRY": "3"}, "OPTIONS['RETRY'] must be an int >= 0 or a redis.retry.Retry"),
    ],
)
def test_bad_options_say_what_is_wrong(options, message):
    with sessions_alias(**options), pytest.raises(ImproperlyConfigured) as info:
        SessionStore().save()
    assert message in str(info.value)


def test_unknown_options_never_break_the_cache_or_the_sessions():
    """A name meant for a third-party serializer or connection factory, or a typo, is the
    system checks' business (W004 with the likely name); the alias keeps working."""
    with sessions_alias(COMPRES_LIB="zlib", THIRD_PARTY_SETTING={"a": 1}):
        cache = caches["sessions"]
        cache.set("k", 1)
        assert cache.get("k") == 1
        session = SessionStore()
        session["x"] = 1
        session.save()
        assert SessionStore(session.session_key)["x"] == 1
        messages = [m for m in run_checks(tags=["caches"]) if m.id == "cache_sessions.W004"]
    assert [m.msg.split("'")[5] for m in messages] == ["COMPRES_LIB", "THIRD_PARTY_SETTING"]
    assert messages[0].hint == "Did you mean 'COMPRESS_LIB'?"
    assert messages[1].hint is None


def int_version_key_function(key: str, key_prefix: str, version: int) -> str:
    """As Django documents KEY_FUNCTION: the version is an int."""
    return f"{key_prefix}:{version:05d}:{key}"


def test_a_key_function_that_formats_the_version_as_an_int():
    with (
        sessions_alias(),
        override_settings(
            CACHES={"default": LOCMEM, "sessions": {**_config(13), "KEY_FUNCTION": int_version_key_function}}
        ),
    ):
        cache = caches["sessions"]
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert cache_sessions.get_client("sessions").get(b":00001:k") is not None
        session = SessionStore()
        session["x"] = 1
        session.save()
        assert SessionStore(session.session_key)["x"] == 1
        assert check_ids() == []


def test_bad_session_options_do_not_break_the_cache():
    """The session side never takes the alias hostage: session options are read when
    sessions use the alias (and by the system checks), not when the cache is built."""
    with sessions_alias(BUCKETS=0, COMPRESS_LIB="nonexistent_lib"):
        cache = caches["sessions"]
        cache.set("k", 1)
        assert cache.get("k") == 1
        with pytest.raises(ImproperlyConfigured):
            SessionStore().save()


def test_django_redis_options_are_accepted():
    django_redis = {"SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 5, "IGNORE_EXCEPTIONS": False}
    django_base = {"MAX_ENTRIES": 300, "CULL_FREQUENCY": 3}  # read by Django's BaseCache
    with sessions_alias(**django_redis, **django_base, CONNECTION_POOL_KWARGS={}):
        session = SessionStore()
        session.save()
        assert session.exists(session.session_key)


def test_missing_alias():
    with override_settings(CACHES={"default": LOCMEM}), pytest.raises(ImproperlyConfigured) as info:
        SessionStore().save()
    assert "no cache alias 'sessions' in CACHES" in str(info.value)
    assert "cache_sessions.cache.RedisCache" in str(info.value)


def test_alias_that_is_not_django_redis():
    with override_settings(CACHES={"default": LOCMEM, "sessions": LOCMEM}), pytest.raises(ImproperlyConfigured) as info:
        SessionStore().save()
    assert "LocMemCache" in str(info.value)
    assert "set its BACKEND to 'cache_sessions.cache.RedisCache'" in str(info.value)


def test_alias_is_read_when_used():
    session = SessionStore()
    with sessions_alias():
        session.save()
        assert sessions_for("sessions").exists(session.session_key)


def test_backend_defaults_to_our_client_and_keeps_an_explicit_one():
    with sessions_alias():
        assert type(caches["sessions"].client) is SessionClient
    with sessions_alias(CLIENT_CLASS="django_redis.client.DefaultClient"):
        assert type(caches["sessions"].client).__name__ == "DefaultClient"


def test_raw_client_is_shared_with_sessions():
    with sessions_alias():
        raw = cache_sessions.get_client("sessions")
        assert isinstance(raw, Redis)
        assert raw is caches["sessions"].get_client(write=True)
        assert raw.connection_pool is sessions_for("sessions").redis().connection_pool
        assert raw.ping()


def test_get_client_of_a_bad_alias():
    with pytest.raises(ImproperlyConfigured):
        cache_sessions.get_client("nope")


def test_ordinary_cache_behaviour_is_untouched():
    with sessions_alias():
        cache = caches["sessions"]
        cache.set("a", {"x": 1}, 30)
        assert cache.get("a") == {"x": 1}
        cache.set("n", 1)
        assert cache.incr("n") == 2
        assert 25 <= cache.ttl("a") <= 30
        cache.delete_pattern("*")
        assert cache.get("a") is None


@pytest.mark.parametrize("name", STRING_CONFIGS)
def test_keys_live_in_a_namespace_of_their_own(name):
    config = CONFIGS[name]
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        session = SessionStore()
        session["x"] = 1
        session.save()
        key = session.session_key
        prefix = f"{config['KEY_PREFIX']}:s{config['VERSION']}:".encode()
        assert SessionStore()._storage.redis_key(key) == prefix + key.encode()
        cache = caches["sessions"]
        # Whatever app code caches on the same alias, it never lands on a session...
        for cache_key in (key, f"s{config['VERSION']}:{key}", f"{config['KEY_PREFIX']}:s1:{key}", ""):
            cache.set(cache_key, "cache value")
        assert SessionStore(key)["x"] == 1
        # ...and a cookie naming a cache key never reads it.
        cache.set("abcdefgh1234", "secret")
        assert SessionStore("abcdefgh1234").load() == {}
        raw("sessions").flushdb()


def test_version_bump_retires_sessions():
    with sessions_alias():
        session = SessionStore()
        session.save()
    with override_settings(CACHES={"default": LOCMEM, "sessions": {**_config(13), "VERSION": 2}}):
        assert not SessionStore().exists(session.session_key)


def compact_generator(session_key: str) -> bytes:
    return b"k" + session_key[:16].encode()


@pytest.mark.parametrize("generator", [compact_generator, "tests.test_config.compact_generator"])
def test_custom_key_generator(generator):
    with sessions_alias(KEY_GENERATOR=generator, **STRING):
        session = SessionStore()
        session["x"] = 1
        session.save()
        raw = cache_sessions.get_client("sessions")
        assert raw.keys() == [b":s1:k" + session.session_key[:16].encode()]
        assert SessionStore(session.session_key)["x"] == 1


def test_log_key_error(caplog):
    with sessions_alias(LOG_KEY_ERROR=True), caplog.at_level(logging.WARNING, "cache_sessions"):
        SessionStore("not a valid key!")
    assert "malformed session key" in caplog.text
    caplog.clear()
    with sessions_alias(), caplog.at_level(logging.WARNING, "cache_sessions"):
        SessionStore("not a valid key!")
    assert caplog.text == ""


def check_ids() -> list[str]:
    return [message.id for message in run_checks(tags=["caches"]) if message.id.startswith("cache_sessions")]


def test_checks_pass_on_a_good_alias():
    with sessions_alias():
        assert check_ids() == []


@pytest.mark.parametrize(
    "caches_setting",
    [
        {"default": LOCMEM},
        {"default": LOCMEM, "sessions": LOCMEM},
        {"default": LOCMEM, "sessions": _config(13, BUCKETS=0)},
        {"default": LOCMEM, "sessions": _config(13, CLIENT_CLASS="django_redis.client.ShardClient")},
        {"default": LOCMEM, "sessions": _config(13, CLIENT_CLASS="tests.test_config.BrokenClient")},
    ],
    ids=["missing", "locmem", "bad-option", "shard-client", "broken-client"],
)
def test_checks_report_a_bad_alias(caches_setting):
    with override_settings(CACHES=caches_setting):
        assert check_ids() == ["cache_sessions.E001"]


class BrokenClient(SessionClient):
    """A client that fails in a way nobody planned for: the check reports it, never crashes."""

    def get_client(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("surprise")


def test_shard_client_gets_a_clear_error():
    with sessions_alias(CLIENT_CLASS="django_redis.client.ShardClient"), pytest.raises(ImproperlyConfigured) as info:
        SessionStore().save()
    assert "ShardClient" in str(info.value)


def broken_generator(session_key: str) -> bytes:
    raise ValueError("boom")


def test_checks_report_a_broken_key_generator():
    with sessions_alias(KEY_GENERATOR=broken_generator):
        assert check_ids() == ["cache_sessions.E002"]


def test_checks_ignore_other_engines():
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db", CACHES={"default": LOCMEM}):
        assert check_ids() == []


@pytest.fixture
def server_limits():
    """Set the test server's listpack limits for one test (and forget what the engine learnt)."""
    raw = Redis.from_url(_config(13)["LOCATION"])
    original = raw.config_get("hash-max-*")

    def set_limits(value: int, entries: int = 512) -> None:
        raw.config_set("hash-max-ziplist-value", value)
        raw.config_set("hash-max-ziplist-entries", entries)
        facts.forget()

    yield set_limits
    for name, value in original.items():
        raw.config_set(name, value)
    facts.forget()


def logged_in() -> SessionStore:
    session = SessionStore()
    session.update(
        {
            "_auth_user_id": "1",
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": "ab" * 32,
            "_csrftoken": "Q2xDm6vbv8hl0pQyWRMoWBPg7pPW3sE3",
        }
    )
    session.save()
    return session


def test_w001_warns_when_stored_sessions_overflow(server_limits):
    with sessions_alias(BUCKETS=4):
        server_limits(64)
        # A new site: nothing stored, so a session made here (a login, a CSRF token, a message) is measured.
        assert check_ids() == ["cache_sessions.W001"]
        assert "hash-max-listpack-value (64 bytes)" in str(run_checks(tags=["caches"])[0])
        server_limits(256)
        assert check_ids() == []
        server_limits(64)
        small = SessionStore()
        small["_auth_user_id"] = "1"  # a default Django login is ~49 bytes: fits 64
        small.save()
        assert check_ids() == []
        for _ in range(8):
            logged_in()  # ~85 bytes with a CSRF token in the session: overflows
        assert check_ids() == ["cache_sessions.W001"]
        server_limits(256)
        assert check_ids() == []


def test_w002_warns_about_a_low_entries_limit(server_limits):
    with sessions_alias():
        server_limits(256, 128)
        assert check_ids() == ["cache_sessions.W002"]


def test_w005_warns_when_hash_max_inline_is_above_the_server_limit(server_limits):
    with sessions_alias(HASH_MAX_INLINE=300):
        server_limits(256)
        assert check_ids() == ["cache_sessions.W005"]
    with sessions_alias(HASH_MAX_INLINE=200):
        assert check_ids() == []


def test_checks_on_an_unreachable_server_only_inform():
    dead = {**_config(13), "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(CACHES={"default": LOCMEM, "sessions": dead}):
        assert check_ids() == ["cache_sessions.I001"]


@pytest.fixture
def config_forbidden():
    """The server refuses CONFIG, as managed Redis services often do."""
    raw = Redis.from_url(_config(13)["LOCATION"])
    raw.execute_command("ACL", "SETUSER", "default", "-config")
    facts.forget()
    yield
    raw.execute_command("ACL", "SETUSER", "default", "+config")
    facts.forget()


def test_checks_warn_when_config_cannot_be_read(config_forbidden):
    with sessions_alias():
        assert check_ids() == ["cache_sessions.W003"]
    with sessions_alias(HASH_MAX_INLINE=256):
        assert check_ids() == []  # the option says what the server would have


_calls = iter(range(10**9))


def counting_generator(session_key: str) -> bytes:
    return b"%d" % next(_calls)


@pytest.mark.parametrize("option", ["KEY_GENERATOR", "HASH_KEY_GENERATOR"])
def test_checks_report_a_generator_that_is_not_deterministic(option):
    with sessions_alias(**{option: counting_generator}):
        assert check_ids() == ["cache_sessions.E002"]


def test_storage_is_built_once_per_process_and_setting():
    """Django makes a cache object per thread (and per request under ASGI): the storage
    is not rebuilt for each; a changed CACHES setting gets a new one."""
    import threading

    with sessions_alias(CLIENT_CLASS="django_redis.client.DefaultClient"):
        first = sessions_for("sessions")
        seen = []
        thread = threading.Thread(target=lambda: seen.append(sessions_for("sessions")))
        thread.start()
        thread.join()
        assert seen == [first]
        assert SessionStore()._storage is first
    with sessions_alias(BUCKETS=8):
        assert sessions_for("sessions") is not first


def test_sessions_work_when_config_cannot_be_read(config_forbidden):
    with sessions_alias():
        session = SessionStore()
        session["x"] = "y" * 100  # over the assumed 64-byte limit: an overflow key
        session.save()
        assert SessionStore(session.session_key)["x"] == "y" * 100


def test_deploy_check_wants_socket_timeouts():
    def deploy_ids() -> list[str]:
        return [m.id for m in run_checks(tags=["caches"], include_deployment_checks=True) if m.id.endswith("W006")]

    with sessions_alias():
        assert deploy_ids() == ["cache_sessions.W006"]
        assert check_ids() == []  # only with --deploy
    with sessions_alias(SOCKET_TIMEOUT=1, SOCKET_CONNECT_TIMEOUT=1):
        assert deploy_ids() == []
