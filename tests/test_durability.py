"""No session is lost or duplicated: kill -9 and restart with AOF, racing
creates and deletes, and creates whose reply is lost or late and retried.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.utils.crypto import get_random_string
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache_sessions.backend import SessionStore
from cache_sessions.testing import RedisServer
from tests.support.fault_servers import crash, durable_server, sessions_on
from tests.support.faults import FaultProxy
from tests.support.servers import RECOMMENDED, hash_write

pytestmark = pytest.mark.django_db(databases=[])

KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(params=[False, True], ids=["string", "hash"])
def use_hash(request):
    return request.param


@pytest.fixture
def server():
    with RedisServer(config=RECOMMENDED) as server:
        yield server


@pytest.fixture
def durable():
    server = durable_server()
    yield server
    server.stop()


def stored_sessions(redis: Redis, use_hash: bool) -> int:
    """How many sessions Redis holds in the default namespace (``:s1:``), live or not."""
    if use_hash:
        return sum(redis.hlen(bucket) for bucket in redis.scan_iter(match=b":s1:h{*}", _type="hash"))
    return sum(1 for _ in redis.scan_iter(match=b":s1:*"))


def logged_in(n: int) -> dict:
    session = {
        "_auth_user_id": str(n),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": get_random_string(64, "0123456789abcdef"),
        "cart": list(range(n % 7)),
    }
    if n % 10 == 0:  # some big ones: hash mode keeps them under overflow keys
        session["notes"] = get_random_string(2000)
    return session


def save(data: dict) -> str:
    session = SessionStore()
    session.update(data)
    session.save()
    return session.session_key


def test_kill_9_and_restart_with_aof_loses_nothing(durable, use_hash):
    with sessions_on(durable.url, use_hash=use_hash):
        saved = {}
        for n in range(300):
            data = logged_in(n)
            saved[save(data)] = data
        first, second = list(saved)[:2]
        session = SessionStore(first)
        session["cart"] = ["changed last"]
        session.save()
        saved[first] = {**saved[first], "cart": ["changed last"]}
        SessionStore(second).delete()
        del saved[second]

        crash(durable)
        durable.start()

        assert {key: SessionStore(key).load() for key in saved} == saved
        assert not SessionStore().exists(second)
        assert stored_sessions(Redis(port=durable.port), use_hash) == len(saved)
        session = SessionStore(first)  # writes go on (hash mode: after NOSCRIPT, the scripts are sent again)
        session["cart"] = ["after the restart"]
        session.save()
        assert SessionStore(first)["cart"] == ["after the restart"]


def test_concurrent_creates_of_one_key_have_exactly_one_winner(server, use_hash):
    threads, rounds = 8, 20
    with sessions_on(server.url, use_hash=use_hash), ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            key = get_random_string(32, KEY_CHARS)
            start = threading.Barrier(threads)

            def create(n: int, key: str = key, start: threading.Barrier = start) -> int | None:
                session = SessionStore(key)
                session._session_cache = {"winner": n}  # data for a key never loaded, as create() has
                start.wait()
                try:
                    session.save(must_create=True)
                except CreateError:
                    return None
                return n

            winners = [n for n in pool.map(create, range(threads)) if n is not None]
            assert len(winners) == 1
            assert SessionStore(key).load() == {"winner": winners[0]}
        assert stored_sessions(Redis(port=server.port), use_hash) == rounds


def test_save_racing_a_delete_never_resurrects_the_session(server, use_hash):
    rounds = 200
    with sessions_on(server.url, use_hash=use_hash), ThreadPoolExecutor(2) as pool:
        for n in range(rounds):
            key = save(logged_in(n))
            loaded = SessionStore(key)
            loaded.load()
            loaded["cart"] = ["saved while deleted"]
            start = threading.Barrier(2)

            def save_it(loaded: SessionStore = loaded, start: threading.Barrier = start) -> None:
                start.wait()
                with contextlib.suppress(UpdateError):  # the delete came first: the save must not bring it back
                    loaded.save()

            def delete_it(key: str = key, start: threading.Barrier = start) -> None:
                start.wait()
                SessionStore(key).delete()

            for future in [pool.submit(save_it), pool.submit(delete_it)]:
                future.result()
            assert not SessionStore().exists(key)
        assert stored_sessions(Redis(port=server.port), use_hash) == 0


# A create whose reply never arrives (lost, or later than SOCKET_TIMEOUT) did run on
# the server. If the client retries it, the retry must count as the same create:
# today it finds the key taken, and the engine creates a second copy under a new key.
RETRY_SOURCES = [
    pytest.param(
        {"RETRY": 2},
        id="RETRY-option",
    ),
    pytest.param(
        {"CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 2)}},
        id="redis-py-Retry",
    ),
]


@pytest.mark.parametrize("retry", RETRY_SOURCES)
@pytest.mark.parametrize("fault", ["reply lost", "reply late"])
def test_retried_create_leaves_exactly_one_session(server, use_hash, fault, retry):
    creates = 5
    # String mode creates with SET NX GET, or (Redis 6.2 has no NX with GET) a small script.
    write = hash_write() if use_hash else "EVALSHA" if server.version() < (7,) else "SET"
    # 0.3 s: long enough for a retry on a busy machine, well short of the 1 s the late reply waits.
    with FaultProxy(server.port) as proxy, sessions_on(proxy.url, use_hash=use_hash, SOCKET_TIMEOUT=0.3, **retry):
        SessionStore().create()  # hash mode: scripts loaded and CONFIG read before the faults start
        sessions = {}
        for n in range(creates):
            session = SessionStore()
            session["n"] = n
            if fault == "reply lost":
                proxy.drop_reply(write)
            else:
                proxy.delay_reply(write, 1.0)
            session.save()
            sessions[session.session_key] = {"n": n}
        assert proxy.dropped + proxy.delayed == creates  # every create met its fault
        assert {key: SessionStore(key).load() for key in sessions} == sessions
        orphans = stored_sessions(Redis(port=server.port), use_hash) - creates - 1
        assert orphans == 0
