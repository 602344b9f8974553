"""Moving sessions out of django-redisession, which cannot run here (Python 3, Django 4+).

Its sessions are written the way its 0.3.1 ``backend.py`` wrote them (``write`` below:
flag byte + pickle, snappy when >= 400 bytes; in hash mode behind a 4-byte big-endian
expiry), then a user with that cookie must still be logged in on cache_sessions.
"""

from __future__ import annotations

import base64
import datetime
import logging
import pickle
import struct
import time
from typing import Any

import pytest
import snappy
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from cache_sessions.migration.base import Unreadable
from cache_sessions.migration.redisession import unpickle
from cache_sessions.storage.registry import sessions_for
from tests.support.migration_site import alias, caches, in_ours, raw, server, site_fixture, user_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

HEX_KEY = "0123456789abcdef0123456789abcdef"  # Django 1.4 made hex keys: its default generators read them


def b64_key(key: str) -> bytes:  # the README's generators for Django 1.5+ keys, in Python 3
    return base64.b64decode(key)


def b64_bucket(key: str) -> bytes:
    return base64.b64decode(key)[:2]


def write(key: str, payload: bytes, ttl: int, use_hash: bool = True, generators: Any = None) -> None:
    """What redisession's save() sent (``payload``: a pickle of the session dict)."""
    key_gen, hash_gen = generators or (bytes.fromhex, lambda k: bytes.fromhex(k[:4]))
    flag = 0
    if len(payload) >= 400:
        compressed = snappy.compress(payload)
        if len(compressed) < len(payload):
            flag, payload = 1, compressed
    value = bytes((flag,)) + payload
    r = raw(4)
    if use_hash:
        r.hset(hash_gen(key), key_gen(key), struct.pack(">I", int(time.time() + ttl)) + value)
    else:
        r.pipeline().setnx(key_gen(key), value).expire(key_gen(key), ttl).execute()


def python2_pickle(session: dict[bytes, Any]) -> bytes:
    """``pickle.dumps(session, 2)`` as Python 2 made it: str keys and values as 8-bit strings."""

    def text(value: bytes) -> bytes:
        return b"U" + bytes((len(value),)) + value  # SHORT_BINSTRING

    def item(value: Any) -> bytes:
        if isinstance(value, bytes):
            return text(value)
        if isinstance(value, datetime.datetime):  # datetime(state, pytz.utc): GLOBAL, EMPTY_TUPLE, REDUCE, TUPLE2
            utc = b"cpytz\n_UTC\n)R" if value.tzinfo else b""
            return b"cdatetime\ndatetime\n" + text(value.__reduce__()[1][0]) + utc + (b"\x86R" if utc else b"\x85R")
        raise TypeError(value)

    return b"\x80\x02}(" + b"".join(text(k) + item(v) for k, v in session.items()) + b"u."


def login_session(user) -> dict[str, Any]:
    return {
        "_auth_user_id": str(user.pk),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": user.get_session_auth_hash(),
    }


def switched(**migrate_from: Any) -> Any:
    source = {"ENGINE": "redisession.backend", "SERVER": {"host": "127.0.0.1", "port": server().port, "db": 4}}
    return override_settings(
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
        CACHES=caches(alias(0, MIGRATE_FROM={**source, **migrate_from})),
    )


def browser(key: str) -> Client:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    return client


def test_hash_mode_with_its_default_generators(user):
    write(HEX_KEY, pickle.dumps(login_session(user), pickle.HIGHEST_PROTOCOL), 500)
    with switched():
        assert browser(HEX_KEY).get("/whoami/").content == b"ada"
        assert 480 < in_ours(HEX_KEY).expires_at - time.time() <= 501  # its remaining expiry
    assert raw(4).hget(bytes.fromhex(HEX_KEY[:4]), bytes.fromhex(HEX_KEY)) is None  # moved, not copied


def test_string_mode_compressed_with_the_readme_generators(user):
    key = "k" * 32
    session = {**login_session(user), "cart": ["tea"] * 200}  # >= 400 bytes: snappy, flag 1
    generators = (b64_key, b64_bucket)
    write(key, pickle.dumps(session, pickle.HIGHEST_PROTOCOL), 500, use_hash=False, generators=generators)
    assert raw(4).get(b64_key(key))[0] == 1  # compressed, as redisession did
    with switched(USE_HASH=False, KEY_GENERATOR=b64_key, HASH_KEY_GENERATOR=b64_bucket):
        client = browser(key)
        assert client.get("/whoami/").content == b"ada"
        assert 480 < in_ours(key).expires_at - time.time() <= 501
        assert client.get("/add/?item=milk").content.endswith(b"tea,milk")


def test_settings_are_read_from_redis_session_config(user):
    """Without parameters, MIGRATE_FROM reads the REDIS_SESSION_CONFIG the site already has."""
    write(HEX_KEY, pickle.dumps(login_session(user), 2), 500)
    config = {"SERVER": {"host": "127.0.0.1", "port": server().port, "db": 4}, "COMPRESS_LIB": "snappy"}
    with (
        override_settings(
            SESSION_ENGINE="cache_sessions.backend",
            REDIS_SESSION_CONFIG=config,
            CACHES=caches(alias(0, MIGRATE_FROM="redisession.backend")),
        ),
    ):
        assert browser(HEX_KEY).get("/whoami/").content == b"ada"


def test_python2_pickles_are_read_as_text(user):
    logged_at = datetime.datetime(2012, 4, 1, 12, 30, 5, tzinfo=datetime.UTC)  # Django's timezone.now(): pytz.utc
    session = {k.encode(): v.encode() for k, v in login_session(user).items()}
    write(HEX_KEY, python2_pickle({**session, b"logged_at": logged_at, b"name": "Zoë".encode()}), 500)
    with switched():
        moved = sessions_for("sessions").load(HEX_KEY) if browser(HEX_KEY).get("/whoami/").content == b"ada" else None
    assert moved is not None
    assert moved["name"] == "Zoë"  # UTF-8 byte strings become text
    assert moved["_auth_user_id"] == str(user.pk)
    assert unpickle(python2_pickle({b"at": logged_at}))["at"] == logged_at
    naive = python2_pickle({**session, b"at": logged_at.replace(tzinfo=None)})
    assert unpickle(naive)["at"] == logged_at.replace(tzinfo=None)  # read, but msgpack stores aware datetimes only:


def test_a_session_this_engine_cannot_store_is_not_moved_and_says_why(user, caplog):
    session = {k.encode(): v.encode() for k, v in login_session(user).items()}
    write(HEX_KEY, python2_pickle({**session, b"at": datetime.datetime(2012, 4, 1)}), 500)
    with switched(), caplog.at_level(logging.WARNING):
        assert browser(HEX_KEY).get("/whoami/").content == b"-"
    assert "naive datetimes cannot be stored" in caplog.text


def test_expired_sessions_are_not_resurrected(user):
    write(HEX_KEY, pickle.dumps(login_session(user), 2), -10)  # its expiry header is in the past
    with switched():
        assert browser(HEX_KEY).get("/whoami/").content == b"-"
        assert in_ours(HEX_KEY) is None


def test_a_pickle_that_would_run_code_is_not_read(user, caplog):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    write(HEX_KEY, pickle.dumps({"_auth_user_id": Exploit()}, 2), 500)
    with pytest.raises(Unreadable, match=r"builtins\.print"):
        unpickle(pickle.dumps(Exploit()))
    with switched(), caplog.at_level(logging.WARNING):
        assert browser(HEX_KEY).get("/whoami/").content == b"-"
    assert "print, which is not read" in caplog.text


def test_a_key_its_generator_cannot_take_never_reaches_redis(user):
    """The old engine skipped keys its generator failed on; so does the fallback (no round trip)."""
    from tests.support.redis_stats import sent_by_clients

    with switched():
        from cache_sessions.backend import SessionStore
        from cache_sessions.storage.registry import sessions_for

        sessions_for("sessions").inline_limit()  # known: loads are a plain HGET (no overflow GET with it)
        with sent_by_clients() as sent:
            assert SessionStore("z" * 32).load() == {}  # "zz..." is not hex
    assert sent.commands == {"hget": 2}  # ours, twice (nothing was moved meanwhile); redisession: nothing


def test_bulk_copy_is_refused_with_the_reason():
    with switched(), pytest.raises(CommandError, match="session keys cannot be recovered"):
        call_command("migratesessions")


# pickle.dumps(session, pickle.HIGHEST_PROTOCOL) by Python 2.7.18, as django-redisession ran it: 8-bit str
# keys and values, a unicode value, a datetime, a set.
PYTHON27_PICKLE = (
    b"\x80\x02}q\x00(U\x04nameq\x01X\x04\x00\x00\x00Zo\xc3\xabq\x02U\r_auth_user_idq\x03U\x0242q\x04U\nbytes_name"
    b"q\x05U\x04Zo\xc3\xabq\x06U\x04tagsq\x07c__builtin__\nset\nq\x08]q\tU\x01aq\na\x85q\x0bRq\x0cU\x12_auth_user_"
    b"backendq\rU)django.contrib.auth.backends.ModelBackendq\x0eU\x01nq\x0fK\x03U\x02atq\x10cdatetime\ndatetime\n"
    b"q\x11U\n\x07\xdc\x04\x01\x0c\x1e\x05\x00\x00\x00q\x12\x85q\x13Rq\x14u."
)


def test_a_pickle_python_2_wrote():
    assert unpickle(PYTHON27_PICKLE) == {
        "_auth_user_id": "42",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "name": "Zoë",
        "bytes_name": "Zoë",
        "tags": {"a"},
        "n": 3,
        "at": datetime.datetime(2012, 4, 1, 12, 30, 5),
    }
