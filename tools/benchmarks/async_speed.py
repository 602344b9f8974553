"""Async session operations in one process: native (redis.asyncio) vs the thread hop.

    python -m tools.benchmarks.async_speed [--rounds R] [--seconds S]

Rows interleaved round by round, on one throwaway server; ops/s is the median
over the rounds. "hop" is cache_sessions as it was before native async: each
async call runs its sync twin in a worker thread (``tools.benchmarks.hop_engine``).
Sequential: one task awaits one operation after another. Concurrent: 50 tasks
at once, each doing its share.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import django
from django.conf import settings

from cache_sessions.testing import RedisServer

USER = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "ab" * 32,
    "_csrftoken": "Q2xDm6vbv8hl0pQyWRMoWBPg7pPW3sE3",
}
TASKS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per cell and round (default 1)")
    args = parser.parse_args()
    with RedisServer(config={"hash-max-ziplist-value": "256"}) as server:
        settings.configure(
            SECRET_KEY="bench",
            INSTALLED_APPS=["cache_sessions"],
            SESSION_CACHE_ALIAS="sessions",
            CACHES={"sessions": {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": f"{server.url}/0"}},
        )
        django.setup()
        from cache_sessions.backend import SessionStore as Native
        from tools.benchmarks.hop_engine import SessionStore as Hop

        rows = {"native": Native, "hop": Hop}
        results: dict[tuple[str, str, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, store in rows.items():
                for shape, ops in asyncio.run(measure(store, args.seconds)).items():
                    for op, rate in ops.items():
                        results.setdefault((name, shape, op), []).append(rate)
        print(f"ops/s, median of {args.rounds} rounds ({server.binary}, Django {django.get_version()})")
        print(f"{'engine':<8} {'shape':<12} {'load':>8} {'save':>8}")
        for name in rows:
            for shape in ("sequential", "concurrent"):
                load, save = (statistics.median(results[(name, shape, op)]) for op in ("load", "save"))
                print(f"{name:<8} {shape:<12} {load:>8,.0f} {save:>8,.0f}")
        for shape in ("sequential", "concurrent"):
            ratio = [
                statistics.median(results[("native", shape, op)]) / statistics.median(results[("hop", shape, op)])
                for op in ("load", "save")
            ]
            print(f"native / hop, {shape}: load {ratio[0]:.2f}x, save {ratio[1]:.2f}x")


async def measure(store: type, seconds: float) -> dict[str, dict[str, float]]:
    session = store()
    session.update(USER)
    await session.asave()
    key = session.session_key

    async def load() -> None:
        await store(key).aload()

    async def save() -> None:
        current = store(key)
        await current.aset("n", 1)  # loads, like a request
        await current.asave()

    out: dict[str, dict[str, float]] = {"sequential": {}, "concurrent": {}}
    for op, step in (("load", load), ("save", save)):
        await step()  # warm
        out["sequential"][op] = await rate(step, seconds, 1)
        out["concurrent"][op] = await rate(step, seconds, TASKS)
    return out


async def rate(step: Callable[[], Awaitable[None]], seconds: float, tasks: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await step()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
