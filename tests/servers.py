"""The Redis servers of a test run: started once per process, on free ports."""

from __future__ import annotations

import functools

from cache_sessions.embedded import RedisServer


@functools.cache
def standalone() -> RedisServer:
    return RedisServer().start()


@functools.cache
def unix_socket() -> RedisServer:
    return RedisServer(unix_socket=True).start()
