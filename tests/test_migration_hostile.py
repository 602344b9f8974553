"""Hostile values in django-redisession's store (whoever can write to the old Redis can plant them):
each request that meets one gets no session and a warning, never a 500, in bounded time; the value
stays in the old store (it may be shared, or read-only) and is not parsed again by this process."""

from __future__ import annotations

import datetime
import logging
import pickle
import struct
import time

import pytest
from django.test import override_settings

from tests.support import hostile_pickles as bombs
from tests.support.migration_site import alias, caches, in_ours, raw, server, site_fixture, user_fixture  # noqa: F401
from tests.test_migration_redisession import HEX_KEY, browser, login_session, switched, write

pytestmark = pytest.mark.django_db

SUSPICIOUS = "django.security.SuspiciousSession"
HOSTILE = {
    "memo doubling, protocol 2": bombs.memo_doubling(28),
    "memo doubling, protocol 4": bombs.memo_doubling_memoize(28),
    "a string doubled": bombs.string_doubling(20),
    "200,000 nested lists": bombs.nested_marks(200_000),  # 400 KB: snappy-compressed, as redisession stored it
    "a self-referencing list": bombs.self_reference(2),
    "a self-referencing dict": bombs.self_reference_dict(4),
    "2,000 int keys of one hash": bombs.colliding_int_keys(2_000),
}


def stored() -> bytes | None:
    return raw(4).hget(bytes.fromhex(HEX_KEY[:4]), bytes.fromhex(HEX_KEY))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == SUSPICIOUS]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_pickle_is_no_session_with_a_warning(user, caplog, name):
    write(HEX_KEY, HOSTILE[name], 500)
    started = time.process_time()
    with switched(), caplog.at_level(logging.WARNING, logger=SUSPICIOUS):
        response = browser(HEX_KEY).get("/whoami/")
    assert time.process_time() - started < 5  # generous: ~0.1 s here (a memo bomb alone ran 25 s and 2.4 GB)
    assert response.status_code == 200 and response.content == b"-"
    assert warnings(caplog) and "Unreadable session in the old session store" in warnings(caplog)[0]
    assert in_ours(HEX_KEY) is None
    assert stored() is not None  # left where it was


def test_an_unreadable_value_is_not_read_again_until_it_changes(user, caplog):
    write(HEX_KEY, bombs.self_reference(2), 500)
    with switched(), caplog.at_level(logging.WARNING, logger=SUSPICIOUS):
        for _ in range(3):
            assert browser(HEX_KEY).get("/whoami/").content == b"-"
        first, *again = warnings(caplog)
        assert "self-reference" in first and "remembered" not in first
        assert len(again) == 2 and all("self-reference" in text and "remembered" in text for text in again)
        write(HEX_KEY, pickle.dumps(login_session(user), 2), 500)  # rewritten (an old process still serving)
        assert browser(HEX_KEY).get("/whoami/").content == b"ada"
    assert stored() is None  # that one was moved


def test_an_expiry_that_is_no_date_is_no_session_with_a_warning(user, caplog):
    """String mode without a TTL: the session's own _session_expiry decides, and it is garbage."""
    infinity, largest = b"G\x7f\xf0" + bytes(6), b"G\x7f\xef" + b"\xff" * 6  # BINFLOAT
    for expiry in (b"X\x07\x00\x00\x00garbage", b"]", infinity, largest):  # text, a list, inf, 1.8e308 s
        raw(4).set(bytes.fromhex(HEX_KEY), b"\x00" + bombs.garbage_expiry(expiry))  # no TTL
        with switched(USE_HASH=False), caplog.at_level(logging.WARNING, logger=SUSPICIOUS):
            response = browser(HEX_KEY).get("/whoami/")
        assert response.status_code == 200 and response.content == b"-"
        assert "_session_expiry" in warnings(caplog)[-1]
    assert raw(4).get(bytes.fromhex(HEX_KEY)) is not None


def test_a_value_too_large_to_be_a_pickle_is_refused_before_it_is_read(user, caplog):
    big = struct.pack(">I", int(time.time()) + 500) + b"\x00" + bombs.huge_bytes(8 << 20)
    raw(4).hset(bytes.fromhex(HEX_KEY[:4]), bytes.fromhex(HEX_KEY), big)
    with switched(), caplog.at_level(logging.WARNING, logger=SUSPICIOUS):
        assert browser(HEX_KEY).get("/whoami/").content == b"-"
    assert "a value of 8,388,6" in warnings(caplog)[0]


@pytest.mark.parametrize("use_hash", [True, False], ids=["ours-hash", "ours-string"])
def test_an_expiry_in_year_9999_moves_and_one_past_it_is_no_session(user, caplog, use_hash):
    source = {"ENGINE": "redisession.backend", "SERVER": {"host": "127.0.0.1", "port": server().port, "db": 4}}
    ours = override_settings(
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
        CACHES=caches(alias(0, USE_HASH=use_hash, MIGRATE_FROM={**source, "USE_HASH": False})),
    )
    far = int(datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC).timestamp()) - int(time.time())
    for seconds, moved in ((far, True), (10**15, False)):
        raw(0).flushdb()  # ours
        expiry = b"\x8a\x08" + seconds.to_bytes(8, "little")  # LONG1
        raw(4).set(bytes.fromhex(HEX_KEY), b"\x00" + bombs.garbage_expiry(expiry))  # no TTL: the data decides
        with ours, caplog.at_level(logging.WARNING, logger=SUSPICIOUS):
            assert browser(HEX_KEY).get("/whoami/").status_code == 200
            assert (in_ours(HEX_KEY) is not None) is moved
        assert any("_session_expiry" in text for text in warnings(caplog)) is not moved
