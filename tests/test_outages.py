"""Redis goes away, hangs, loads, fills up or is a read-only replica: every session
operation fails with an error in bounded time (never an empty session, which
would log the user out), and works again once Redis is back, in the same process.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django_redis.exceptions import ConnectionInterrupted
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.testing import RedisServer
from tests.support.fault_servers import (
    crash,
    durable_server,
    error_kinds,
    error_text,
    expected,
    in_sync,
    replica_of,
    sessions_on,
    wait_for,
)
from tests.support.faults import FaultProxy
from tests.support.servers import RECOMMENDED

pytestmark = pytest.mark.django_db(databases=[])

USER = {"_auth_user_id": "42", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "cart": [1, 2]}
# Seconds an operation may take to fail. Generous: with SOCKET_CONNECT_TIMEOUT/SOCKET_TIMEOUT
# at 0.2 s a refused connection fails at once and a hung one after a few timeouts and backoffs.
BOUND = 5.0
TIMEOUTS = {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}


@pytest.fixture(params=[False, True], ids=["string", "hash"])
def use_hash(request):
    return request.param


@pytest.fixture
def durable():
    server = durable_server()
    yield server
    server.stop()


@pytest.fixture
def server():
    with RedisServer(config=RECOMMENDED) as server:
        yield server


def save_user(data=USER) -> str:
    session = SessionStore()
    session.update(data)
    session.save()
    return session.session_key


def doomed_operations(key: str) -> dict:
    """One call per session operation on the user's session, set up while Redis is healthy."""
    loaded = SessionStore(key)
    loaded.load()
    loaded["cart"] = [3]
    new = SessionStore()
    new["x"] = 1
    return {
        "load": lambda: SessionStore(key).load(),
        "exists": lambda: SessionStore().exists(key),
        "save": loaded.save,
        "create": new.save,
        "delete": lambda: SessionStore(key).delete(),
    }


def assert_each_fails_in_bounded_time(operations: dict, errors: tuple) -> None:
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(errors) as info:
            result = operation()
            pytest.fail(f"{name} returned {result!r} during the outage")  # an empty session would log the user out
        seconds = time.monotonic() - started
        assert seconds < BOUND, f"{name} took {seconds:.2f} s to fail: {error_text(info.value)}"


@error_kinds("SessionStoreUnavailable")
def test_server_down_then_back_on_the_same_port(durable, use_hash, errors):
    accepted = expected(errors)
    with sessions_on(durable.url, use_hash=use_hash, **TIMEOUTS):
        key = save_user()
        operations = doomed_operations(key)
        crash(durable)
        assert_each_fails_in_bounded_time(operations, accepted)
        durable.start()
        assert SessionStore(key).load() == USER  # the first operation after the restart works; nothing was lost
        session = SessionStore(key)
        session["cart"] = [4]
        session.save()
        assert SessionStore(key)["cart"] == [4]
        assert SessionStore(save_user()).load() == USER


def test_clear_expired_during_an_outage_raises_connection_interrupted(durable):
    # Hash mode only: in string mode Redis expires sessions itself and clear_expired sends nothing.
    with sessions_on(durable.url, use_hash=True, **TIMEOUTS):
        save_user()
        crash(durable)
        with pytest.raises(ConnectionInterrupted):
            SessionStore.clear_expired()


@error_kinds("SessionStoreUnavailable")
def test_hung_server_times_out_then_recovers(server, use_hash, errors):
    accepted = expected(errors)
    with FaultProxy(server.port) as proxy, sessions_on(proxy.url, use_hash=use_hash, **TIMEOUTS):
        key = save_user()
        operations = doomed_operations(key)
        proxy.blackhole()
        assert_each_fails_in_bounded_time(operations, accepted)
        proxy.pass_through()
        assert SessionStore(key).load() == USER


def answer_to_ping(port: int) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


@error_kinds("SessionStoreUnavailable")
def test_server_loading_its_data_is_an_error_never_an_empty_session(durable, use_hash, errors):
    accepted = expected(errors)
    if durable.version() < (7,):
        pytest.skip("loading-process-events-interval-bytes needs Redis 7")
    with sessions_on(durable.url, use_hash=use_hash, **TIMEOUTS):
        keys = [save_user({**USER, "n": n}) for n in range(100)]
        rewrite_aof(Redis(port=durable.port))  # the sessions go to the AOF's RDB part, loaded key by key
        crash(durable)
        # Load slowly (3 ms a key), answering clients with -LOADING every 1 KB meanwhile.
        durable.config |= {"key-load-delay": "3000", "loading-process-events-interval-bytes": "1024"}
        restart = threading.Thread(target=durable.start)
        restart.start()
        try:
            wait_for(lambda: answer_to_ping(durable.port).startswith(b"-LOADING"), what="LOADING")
            try:
                session = SessionStore(keys[-1]).load()
            except accepted as exc:
                assert "loading" in error_text(exc).lower()
            else:  # retried until Redis had loaded its data: fine, as long as it is the real session
                assert session == {**USER, "n": 99}
        finally:
            restart.join()
        assert SessionStore(keys[-1]).load() == {**USER, "n": 99}


def rewrite_aof(redis: Redis) -> None:
    redis.bgrewriteaof()
    wait_for(lambda: redis.info("persistence")["aof_rewrite_in_progress"] == 0, what="AOF rewrite")
    assert redis.info("persistence")["aof_last_bgrewrite_status"] == "ok"


@pytest.fixture
def full_server():
    """A server that has reached its ``maxmemory`` with ``noeviction``: Redis refuses writes."""
    with RedisServer(config={**RECOMMENDED, "maxmemory-policy": "noeviction"}) as server:
        yield server


@error_kinds("SessionStoreUnavailable")
def test_out_of_memory_refuses_writes_and_still_serves_sessions(full_server, use_hash, errors):
    accepted = expected(errors)
    with sessions_on(full_server.url, use_hash=use_hash):
        key = save_user()
        loaded = SessionStore(key)
        loaded.load()
        Redis(port=full_server.port).config_set("maxmemory", 1)  # every byte is over the limit
        loaded["cart"] = [3]
        new = SessionStore()
        new["x"] = 1
        for write in (loaded.save, new.save):
            with pytest.raises(accepted) as info:
                write()
            assert "OOM" in error_text(info.value) or "maxmemory" in error_text(info.value)
        assert SessionStore(key).load() == USER
        assert SessionStore().exists(key)
        SessionStore(key).delete()  # frees memory: Redis allows it
        assert not SessionStore().exists(key)


@error_kinds("SessionStoreUnavailable")
def test_read_only_replica_serves_reads_and_refuses_writes(server, use_hash, errors):
    accepted = expected(errors)
    replica = replica_of(server)
    try:
        with sessions_on(server.url, use_hash=use_hash):
            key = save_user()
            in_sync(Redis(port=server.port))
        with sessions_on(replica.url, use_hash=use_hash):
            assert SessionStore(key).load() == USER
            assert SessionStore().exists(key)
            operations = doomed_operations(key)
            del operations["load"], operations["exists"]
            for name, write in operations.items():
                with pytest.raises(accepted) as info:
                    write()
                assert "READONLY" in error_text(info.value) or "read only" in error_text(info.value), name
        with sessions_on(server.url, use_hash=use_hash):
            assert SessionStore(key).load() == USER
    finally:
        replica.stop()
