"""The fault proxy itself: each fault does what its name says, on a real server."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from cache_sessions.testing import RedisServer
from tests.support.faults import FaultProxy, request_args, resp_end, split_messages


@pytest.fixture(scope="module")
def server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def proxy(server):
    with FaultProxy(server.port) as proxy:
        yield proxy


def client(port: int, socket_timeout: float = 1) -> Redis:
    """A client that does not retry (redis-py's ``Redis()`` retries 3 times by default), so each fault shows."""
    return Redis(port=port, socket_connect_timeout=1, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))


@pytest.mark.parametrize(
    "value",
    [b"+OK\r\n", b"$-1\r\n", b"$3\r\nabc\r\n", b"*2\r\n$1\r\na\r\n:1\r\n", b"*-1\r\n", b"%1\r\n+a\r\n*1\r\n_\r\n"],
)
def test_resp_boundaries(value):
    assert resp_end(value) == len(value)
    assert resp_end(value[:-1]) is None
    assert split_messages(value + value[:3]) == ([value], value[:3])


def test_request_args():
    assert request_args(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nv\r\n") == [b"SET", b"k", b"v\r\nv"]


def test_pass_through_including_pipelines(proxy, server):
    redis = client(proxy.port)
    pipe = redis.pipeline(transaction=False)
    for n in range(200):
        pipe.set(f"k{n}", b"x" * n)
    pipe.get("k199")
    assert pipe.execute()[-1] == b"x" * 199
    assert client(server.port).dbsize() == 200


def test_drop_reply_runs_the_command_and_closes_the_connection(proxy, server):
    redis = client(proxy.port)
    redis.ping()
    proxy.drop_reply("SET")
    with pytest.raises(RedisConnectionError):
        redis.set("dropped", 1)
    assert proxy.dropped == 1
    assert client(server.port).get("dropped") == b"1"  # it ran
    assert redis.set("next", 1)  # one-shot: a new connection works


def test_delay_reply_provokes_the_client_timeout(proxy, server):
    redis = client(proxy.port, socket_timeout=0.2)
    redis.ping()
    proxy.delay_reply("INCRBY", 1.0)  # what redis-py sends for incr()
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError):
        redis.incr("counter")
    assert time.monotonic() - started < 0.9
    assert client(server.port).get("counter") == b"1"  # it ran while the client gave up
    assert redis.incr("counter") == 2


def test_blackhole_never_answers(proxy, server):
    proxy.blackhole()
    redis = client(proxy.port, socket_timeout=0.2)
    with pytest.raises(RedisTimeoutError):
        redis.set("swallowed", 1)
    assert client(server.port).get("swallowed") is None
    proxy.pass_through()
    assert client(proxy.port).set("swallowed", 1)


def test_hang_at_swallows_one_command_and_hangs_its_connection_only(proxy, server):
    redis = client(proxy.port, socket_timeout=0.2)
    redis.ping()
    proxy.hang_at("SET")
    pipe = redis.pipeline(transaction=False)
    pipe.get("before")
    pipe.set("hung", 1)
    pipe.set("after", 1)  # on the hung connection: swallowed too, so no reply lands on the wrong command
    with pytest.raises(RedisTimeoutError):
        pipe.execute()
    assert proxy.hung == 1
    assert client(server.port).mget("hung", "after") == [None, None]
    assert redis.set("hung-then", 1)  # one-shot: a new connection works
    assert client(server.port).get("hung-then") == b"1"


def test_cut_at_closes_the_connection_before_the_command_runs(proxy, server):
    redis = client(proxy.port)
    redis.ping()
    proxy.cut_at("SET")
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        redis.set("cut", 1)
    assert time.monotonic() - started < 0.9  # at once, not after a timeout
    assert proxy.cut == 1
    assert client(server.port).get("cut") is None  # it never ran
    assert redis.set("cut-then", 1)  # one-shot: a new connection works


def test_refuse_then_listen_again_on_the_same_port(proxy):
    redis = client(proxy.port)
    redis.ping()
    proxy.refuse()
    with pytest.raises(RedisConnectionError):
        redis.ping()  # the pooled connection was closed...
    with pytest.raises(RedisConnectionError, match="refused"):
        client(proxy.port).ping()  # ...and nobody listens
    proxy.pass_through()
    assert redis.ping()
