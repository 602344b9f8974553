"""Client CPU of a hash-mode save: each way of sending its two commands, sync and async, one run.

    python -m tools.benchmarks.round_trip_cpu [--rounds N] [--ops N]

A save on Redis 8 in hash mode is two commands in one round trip (``HSETEX FXX``
and ``EXPIRE GT``). The executor sends them on a connection of the client's pool
(``storage/sending.py``, ``_round_trip``), packed by hiredis where it is
installed. The "packed by redis-py" rows make it use the connection's packer
instead (as before hiredis packed them), the "Pipeline" rows make it take
redis-py's pipeline, as it did before that, by hiding the client class it
checks for. Rows (string mode, hash mode each way, sync and async) are
interleaved and shuffled round by round; each cell saves a small session (85 B)
``--ops`` times, gc off; the table gives the median µs of ``time.process_time``
per save, the spread, and the median of the per-round ratios to string mode.
Needs a Redis 8 server (``CACHE_SESSIONS_REDIS_SERVER=redis8``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from typing import Any

import django
import redis
from django.conf import settings

from cache_sessions.testing import RedisServer

DATA = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "a" * 64,
    "_csrftoken": "b" * 32,
}
WARMUP = 200
Row = tuple[str, str, str]  # sync or async, the alias (mode), the way of sending (one of WAYS)
WAYS = {
    "hiredis": "own round trip, hiredis packs",
    "redis-py": "own round trip, redis-py packs",
    "pipeline": "redis-py Pipeline",
}


class NotAClient:
    """What sending.py's isinstance check is given for the "Pipeline" rows: it matches nothing."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--ops", type=int, default=3000, help="saves per cell and round (default 3000)")
    args = parser.parse_args(argv)
    server = RedisServer(config={"hash-max-listpack-value": "256"}).start()
    try:
        run(server, args.rounds, args.ops)
    finally:
        server.stop()


def run(server: RedisServer, rounds: int, ops: int) -> None:
    def cache(db: int, use_hash: bool) -> dict[str, Any]:
        return {
            "BACKEND": "cache_sessions.cache.RedisCache",
            "LOCATION": f"{server.url}/{db}",
            "OPTIONS": {"USE_HASH": use_hash},
        }

    settings.configure(
        SECRET_KEY="round-trip-cpu",
        USE_TZ=True,
        INSTALLED_APPS=[],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "string": cache(1, False),
            "hash": cache(2, True),
        },
        SESSION_CACHE_ALIAS="hash",
    )
    django.setup()
    from django.test import override_settings

    from cache_sessions.backend import SessionStore
    from cache_sessions.storage import sending

    clients = sending.Redis, sending.AsyncRedis

    hiredis_pack = sending._pack_in_c

    def choose(way: str) -> None:
        lean = way != "pipeline"
        sending.Redis = clients[0] if lean else NotAClient  # type: ignore[misc,assignment]
        sending.AsyncRedis = clients[1] if lean else NotAClient  # type: ignore[misc,assignment]
        sending._pack_in_c = hiredis_pack if way == "hiredis" else None

    def sync_cell(alias: str) -> float:
        with override_settings(SESSION_CACHE_ALIAS=alias):
            session = SessionStore()
            session.update(DATA)
            session.save()
            session = SessionStore(session.session_key)
            session.load()
            for n in range(WARMUP):
                session["_csrftoken"] = str(n)
                session.save()
            gc.collect()
            gc.disable()
            cpu = time.process_time()
            for n in range(ops):
                session["_csrftoken"] = str(n)
                session.save()
            cpu = time.process_time() - cpu
            gc.enable()
        return cpu / ops * 1e6

    async def async_cell(alias: str) -> float:
        with override_settings(SESSION_CACHE_ALIAS=alias):
            session = SessionStore()
            session.update(DATA)
            await session.asave()
            session = SessionStore(session.session_key)
            await session.aload()
            for n in range(WARMUP):
                session["_csrftoken"] = str(n)
                await session.asave()
            gc.collect()
            gc.disable()
            cpu = time.process_time()
            for n in range(ops):
                session["_csrftoken"] = str(n)
                await session.asave()
            cpu = time.process_time() - cpu
            gc.enable()
        return cpu / ops * 1e6

    rows: list[Row] = [
        (api, alias, way)
        for api in ("sync", "async")
        for alias, way in (("string", "redis-py"), *(("hash", way) for way in WAYS))
        if way != "hiredis" or hiredis_pack is not None
    ]
    cpu: dict[Row, list[float]] = {row: [] for row in rows}
    rng = random.Random(2024)
    for _ in range(rounds):
        for row in rng.sample(rows, len(rows)):
            api, alias, way = row
            choose(way)
            cpu[row].append(sync_cell(alias) if api == "sync" else asyncio.run(async_cell(alias)))
    choose("hiredis")
    print(
        f"redis-py {redis.__version__}, Redis {redis.Redis(port=server.port).info('server')['redis_version']}: "
        f"client CPU per save of a small session, µs (median of {rounds} rounds of {ops} saves) [min-max], "
        "x string: median of the per-round ratios to string mode"
    )
    for row in rows:
        api, alias, way = row
        label = f"{api}, string mode" if alias == "string" else f"{api}, hash mode, {WAYS[way]}"
        values, strings = cpu[row], cpu[(api, "string", "redis-py")]  # (a string save packs one command)
        ratio = statistics.median(value / string for value, string in zip(values, strings, strict=True))
        print(
            f"  {label:<52} {statistics.median(values):7.1f} [{min(values):.1f}-{max(values):.1f}]"
            f"  x string {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
