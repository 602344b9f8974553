"""What one user can make the index cost: USER_SESSIONS_MAX, and the Redis time of each
index script on the largest run a hostile user can build.

A hostile user logs in again and again (each login a record), with the longest user
agent and address the metadata keeps, on an alias whose places (its Redis names) are
long. The server logs every command in SLOWLOG (``slowlog-log-slower-than 0``): each
script's own Redis time is asserted, against a ceiling a loaded 2-core machine meets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings

from cache_sessions import users
from cache_sessions.backend import SessionStore
from cache_sessions.storage import index as user_index
from cache_sessions.storage import index_lua
from cache_sessions.storage.index_meta import MAX_ADDRESS, MAX_USER_AGENT
from cache_sessions.testing import RedisServer
from tests.support.servers import RECOMMENDED

CEILING_US = 5000  # Redis time of one script call, in microseconds
USER = "42"
LOGGED_IN = {"_auth_user_id": USER, "_auth_user_backend": "django.contrib.auth.backends.ModelBackend"}
LONGEST_META = {"i": "f" * MAX_ADDRESS, "a": "x" * MAX_USER_AGENT}
LONG_PREFIX = "a-long-site-prefix-" * 3  # the places in records grow with it
SCRIPTS = {script.sha: name for name, script in vars(index_lua).items() if isinstance(script, index_lua.Script)}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(config={**RECOMMENDED, "slowlog-log-slower-than": "0", "slowlog-max-len": "100000"}) as started:
        yield started


@pytest.fixture(params=[True, False], ids=["hash", "string"])
def site(request: pytest.FixtureRequest, server: RedisServer) -> Iterator[redis.Redis]:
    options = {"USE_HASH": request.param, "USER_SESSIONS": True, "USER_SESSION_METADATA": True}
    config = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": server.url,
        "KEY_PREFIX": LONG_PREFIX,
        "OPTIONS": options,
    }
    control = redis.Redis.from_url(server.url)
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "sessions": config}
    ):
        yield control
        control.flushall()


def with_cap(cap: int) -> Any:
    from django.conf import settings

    config = settings.CACHES["sessions"]
    options = {**config["OPTIONS"], "USER_SESSIONS_MAX": cap}
    return override_settings(CACHES={**settings.CACHES, "sessions": {**config, "OPTIONS": options}})


def log_in(count: int) -> list[str]:
    keys = []
    for _ in range(count):
        store = SessionStore()
        store.request_meta = LONGEST_META
        store.update(LOGGED_IN)
        store.create()
        keys.append(store.session_key)
    return keys


def alive(key: str) -> bool:
    return SessionStore().exists(key)


def run() -> dict[bytes, list[Any]]:
    storage = SessionStore()._storage
    entry = user_index.IndexEntry.of(storage, USER)
    return user_index.records(storage.execute(entry.read_call()), time.time())


def script_times(site: redis.Redis) -> dict[str, list[int]]:
    """Microseconds of each index script call since the last SLOWLOG RESET, by script."""
    found: dict[str, list[int]] = {}
    for entry in site.slowlog_get(100000):
        words = entry["command"].split(b" ")
        if words[0].upper() == b"EVALSHA" and words[1].decode() in SCRIPTS:
            found.setdefault(SCRIPTS[words[1].decode()], []).append(entry["duration"])
        elif words[0].upper() == b"EVAL" and b"drop" in entry["command"]:  # pipelined: the source (cut short)
            found.setdefault("INDEX (pipelined)", []).append(entry["duration"])
    return found


def test_a_login_past_the_cap_ends_the_least_recently_active_session(site):
    with with_cap(3):
        first, second, third = log_in(3)
        refreshed = SessionStore(first)  # the first one is used again: its record is rewritten, as the newest
        created, _, expires = refreshed[user_index.MARK]
        refreshed[user_index.MARK] = [created, int(time.time()) - 10_000, expires]
        refreshed.save()
        [fourth] = log_in(1)
        assert not alive(second)  # the least recently active: ended, its record gone with it
        assert all(alive(key) for key in (first, third, fourth))
        assert len(run()) == 3
        assert len(users.user_sessions(USER)) == 3
        assert users.revoke_all_sessions(USER) == 3  # "log out everywhere" still reaches every live session
        assert not any(alive(key) for key in (first, third, fourth))


def test_a_run_never_holds_more_than_twice_the_cap_even_when_endings_fail(site):
    """The sessions past the cap are ended by the client after the script: if it never does
    (a crash), their records stay listed, then the oldest go at once past twice the cap."""
    storage = SessionStore()._storage
    entry = user_index.IndexEntry.of(storage, USER)
    limit = user_index.index_limit(storage)
    for number in range(25):
        write = user_index.Write(USER, user_index.record(b"%12d" % number, int(time.time()) + 600, [[b"p"]]), b"")
        ended = storage.execute(entry.add_call(write, limit, 5))
        assert len(ended) == max(0, min(number, 10) + 1 - 5)  # at most cap + 1 to end
    kept = run()
    assert len(kept) == 10 and sorted(kept) == [b"%12d" % number for number in range(15, 25)]


def test_every_index_script_stays_within_milliseconds_on_the_largest_run(site):
    """Twice the cap of the longest records, the most a run can hold: adding a record (which
    returns cap + 1 to end), removing them all at once, and sweeping them once expired."""
    storage = SessionStore()._storage
    cap = storage.options.user_sessions_max
    entry = user_index.IndexEntry.of(storage, USER)
    limit = user_index.index_limit(storage)
    place = list(storage.place("a" * 32))
    payload = [place, 2**32 - 1, 2**32 - 1, LONGEST_META["i"], LONGEST_META["a"]]

    def fill(expires_at: int) -> list[bytes]:
        sids = [b"%12d" % number for number in range(2 * cap)]
        site.hset(entry.bucket, entry.field, user_index.POINTER_BYTE + (2**32 - 1).to_bytes(4, "big"))
        site.set(entry.overflow, b"".join(user_index.record(sid, expires_at, payload) for sid in sids))
        return sids

    later = int(time.time()) + 3600
    fill(later)
    site.slowlog_reset()
    newest = user_index.Write(USER, user_index.record(b"n" * 12, later, payload), b"")
    assert len(storage.execute(entry.add_call(newest, limit, cap))) == cap + 1
    sids = fill(later)
    storage.execute(entry.remove_call(sids, limit))
    assert run() == {}
    fill(int(time.time()) - 1)
    from cache_sessions.storage.sweep import sweep

    assert sweep(storage, [entry.bucket]).expired == 2 * cap
    times = script_times(site)
    assert set(times) == {"INDEX_ADD", "INDEX_REMOVE", "INDEX_SWEEP"}
    assert max(max(durations) for durations in times.values()) < CEILING_US, times


def test_a_hostile_user_at_the_cap_then_revoke_all(site):
    """Logins far past the cap (each ends the oldest session), then "log out everywhere"."""
    cap = SessionStore()._storage.options.user_sessions_max
    site.slowlog_reset()
    keys = log_in(cap + 30)
    assert not any(alive(key) for key in keys[:30])
    assert len(run()) == cap
    assert users.revoke_all_sessions(USER) == cap
    assert not any(alive(key) for key in keys)
    times = script_times(site)
    assert max(max(durations) for durations in times.values()) < CEILING_US, times
