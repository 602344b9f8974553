"""Count the commands a Redis server receives from clients (MONITOR).

Commands that a Lua script runs are not round trips and are left out; so are
the counting's own commands.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis


@contextmanager
def commands_received(redis: Redis) -> Iterator[Counter[str]]:
    """Yield a Counter that, on exit, holds ``{command: calls}`` sent by clients."""
    counted: Counter[str] = Counter()
    marker = f"end-of-count-{uuid.uuid4().hex}"
    pool = redis.connection_pool
    watcher = Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **pool.connection_kwargs))
    redis.ping()  # the client's pooled connection is open before counting starts
    with watcher.monitor() as monitor:
        yield counted
        redis.echo(marker)
        while True:
            command = monitor.next_command()
            if marker in command["command"]:
                break
            if command["client_type"] != "lua":
                counted[command["command"].split(" ", 1)[0].lower()] += 1
    watcher.close()
