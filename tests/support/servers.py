"""The Redis servers of a test run: started once per process, on free ports."""

from __future__ import annotations

import functools

from cache_sessions.testing import RedisServer

# What README recommends for hash mode (the old name works on Redis 6.2, 7.x and Valkey 9).
RECOMMENDED = {"hash-max-ziplist-value": "256", "hash-max-ziplist-entries": "512"}


@functools.cache
def standalone() -> RedisServer:
    return RedisServer(config=RECOMMENDED).start()


@functools.cache
def unix_socket() -> RedisServer:
    return RedisServer(unix_socket=True).start()


def field_ttls_here() -> bool:
    """Whether hash mode writes with field TTLs on the test server (Redis 8: HSETEX, no script)."""
    from cache_sessions.topology.server_facts import Software

    server = standalone()
    return Software(server.family(), server.version()).compact_field_ttls


def hash_write() -> str:
    """The first command of a hash-mode session write on the test server."""
    return "HSETEX" if field_ttls_here() else "EVALSHA"
