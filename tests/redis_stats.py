"""Count what a Redis server actually received (INFO commandstats)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

_OWN = ("config", "info")  # the counting itself


@contextmanager
def commands_received(redis: Redis) -> Iterator[Counter[str]]:
    """Yield a Counter that, on exit, holds ``{command: calls}`` seen by the server."""
    counted: Counter[str] = Counter()
    redis.config_resetstat()
    yield counted
    for name, stats in redis.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] not in _OWN:
            counted[command] += stats["calls"]
