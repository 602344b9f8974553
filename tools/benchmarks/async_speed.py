"""Async session operations in one process: native (redis.asyncio) vs the thread hop, per topology.

    python -m tools.benchmarks.async_speed [--topologies one,cluster,sentinel] [--rounds R] [--seconds S]
    python -m tools.benchmarks.async_speed --profile cluster [--op save]

Rows interleaved round by round; ops/s is the median over the rounds, CPU the
process's CPU time (every thread) per operation. "hop" is cache_sessions as it
was before native async, on every topology what Cluster and Sentinel did until
now: each async call runs its sync twin in asgiref's worker thread
(``tools.benchmarks.hop_engine``). Sequential: one task awaits one operation
after another. Concurrent: 50 tasks at once, each doing its share. The
topologies: one server; a Redis Cluster of 3 primaries with a replica each; a
Sentinel service (1 primary, 2 replicas, 3 sentinels), each started here.

``--profile TOPOLOGY`` runs the native concurrent ``--op`` under cProfile and
prints where the time goes, by module and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import django
from django.conf import settings
from redis import Redis

from cache_sessions.testing import RedisServer

USER = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "ab" * 32,
    "_csrftoken": "Q2xDm6vbv8hl0pQyWRMoWBPg7pPW3sE3",
}
TASKS = 50
TOPOLOGIES = ("one", "cluster", "sentinel")
LISTPACK = {"hash-max-ziplist-value": "256"}  # the name Redis 6.2 knows too


@contextmanager
def servers(topologies: list[str]) -> Iterator[dict[str, dict[str, Any]]]:
    """The cache alias of each topology, on servers started for it (stopped on leaving)."""
    from tests.support.clusters import Cluster  # the test harness: only the benchmark needs it
    from tests.support.sentinels import SentinelGroup, alias

    aliases: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        if "one" in topologies:
            server = stack.enter_context(RedisServer(config=LISTPACK))
            aliases["one"] = {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": f"{server.url}/0"}
        if "cluster" in topologies:
            cluster = stack.enter_context(Cluster(primaries=3, replicas=1, **LISTPACK))
            aliases["cluster"] = {
                "BACKEND": "cache_sessions.cache.RedisCache",
                "LOCATION": cluster.urls,
                "OPTIONS": {"CLIENT_CLASS": "cache_sessions.cluster.ClusterClient"},
            }
        if "sentinel" in topologies:
            group = SentinelGroup()
            stack.callback(group.stop)
            for server in group.data:
                Redis(port=server.port).config_set(*next(iter(LISTPACK.items())))
            aliases["sentinel"] = alias(group, 0, use_hash=True)
        for config in aliases.values():
            config.setdefault("OPTIONS", {})["USE_HASH"] = True
        yield aliases


def stores(alias: str) -> dict[str, type]:
    """The native and the hop ``SessionStore`` on ``alias``."""
    from functools import cached_property  # after django.setup(): the engine's modules import settings

    from cache_sessions.backend import SessionStore as Native
    from cache_sessions.storage.registry import sessions_for
    from tools.benchmarks.hop_engine import SessionStore as Hop

    def on_alias(base: type) -> type:
        return type(base.__name__, (base,), {"_storage": cached_property(lambda self: sessions_for(alias))})

    return {"native": on_alias(Native), "hop": on_alias(Hop)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES), help="comma-separated (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per cell and round (default 1)")
    parser.add_argument("--profile", choices=TOPOLOGIES, help="cProfile the native concurrent --op there")
    parser.add_argument("--op", choices=("load", "save"), default="save")
    args = parser.parse_args()
    topologies = [args.profile] if args.profile else [t for t in args.topologies.split(",") if t]
    with servers(topologies) as aliases:
        settings.configure(
            SECRET_KEY="bench", INSTALLED_APPS=["cache_sessions"], SESSION_CACHE_ALIAS="one", CACHES=aliases
        )
        django.setup()
        if args.profile:
            profile(stores(args.profile)["native"], args.op, args.seconds)
            return
        results: Results = {}
        for _ in range(args.rounds):
            for topology in topologies:
                for engine, store in stores(topology).items():
                    for shape, ops in asyncio.run(measure(store, args.seconds)).items():
                        for op, figures in ops.items():
                            results.setdefault((topology, engine, shape, op), []).append(figures)
        report(results, topologies, args.rounds)


Results = dict[tuple[str, str, str, str], list[tuple[float, float]]]  # (topology, engine, shape, op): (ops/s, µs)


def report(results: Results, topologies: list[str], rounds: int) -> None:
    def rate(*key: str) -> float:
        return statistics.median(r for r, _ in results[key])  # type: ignore[index]

    def cpu(*key: str) -> float:
        return statistics.median(c for _, c in results[key])  # type: ignore[index]

    print(f"ops/s and process CPU per operation (µs), median of {rounds} rounds (Django {django.get_version()})")
    print(f"{'topology':<9} {'engine':<7} {'shape':<11} {'load/s':>8} {'save/s':>8} {'load µs':>8} {'save µs':>8}")
    for topology in topologies:
        for engine in ("native", "hop"):
            for shape in ("sequential", "concurrent"):
                key = (topology, engine, shape)
                print(
                    f"{topology:<9} {engine:<7} {shape:<11} {rate(*key, 'load'):>8,.0f} {rate(*key, 'save'):>8,.0f} "
                    f"{cpu(*key, 'load'):>8,.0f} {cpu(*key, 'save'):>8,.0f}"
                )
    print("native / hop (ops/s; CPU per op, hop / native)")
    for topology in topologies:
        for shape in ("sequential", "concurrent"):
            speed = [rate(topology, "native", shape, op) / rate(topology, "hop", shape, op) for op in ("load", "save")]
            saving = [cpu(topology, "hop", shape, op) / cpu(topology, "native", shape, op) for op in ("load", "save")]
            print(
                f"{topology:<9} {shape:<11} load {speed[0]:.2f}x, save {speed[1]:.2f}x; "
                f"CPU load {saving[0]:.2f}x, save {saving[1]:.2f}x"
            )


async def measure(store: type, seconds: float) -> dict[str, dict[str, tuple[float, float]]]:
    steps = await operations(store)
    out: dict[str, dict[str, tuple[float, float]]] = {"sequential": {}, "concurrent": {}}
    for op, step in steps.items():
        await step()  # warm
        out["sequential"][op] = await rate(step, seconds, 1)
        out["concurrent"][op] = await rate(step, seconds, TASKS)
    return out


async def operations(store: type) -> dict[str, Callable[[], Awaitable[None]]]:
    """A load, and a request's save (a load, then the save), of sessions spread over the keyspace."""
    keys = []
    for _ in range(TASKS):
        session = store()
        session.update(USER)
        await session.asave()
        keys.append(session.session_key)
    turn = iter(range(1 << 62))

    async def load() -> None:
        await store(keys[next(turn) % TASKS]).aload()

    async def save() -> None:
        current = store(keys[next(turn) % TASKS])
        await current.aset("n", 1)  # loads, like a request
        await current.asave()

    return {"load": load, "save": save}


async def run_for(step: Callable[[], Awaitable[None]], seconds: float, tasks: int) -> int:
    """``tasks`` tasks doing ``step`` again and again for ``seconds``; how many steps they did."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await step()
            done += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done


async def rate(step: Callable[[], Awaitable[None]], seconds: float, tasks: int) -> tuple[float, float]:
    """``(operations per second, process CPU µs per operation)`` of ``tasks`` tasks doing ``step``."""
    started, cpu = time.perf_counter(), time.process_time()
    done = await run_for(step, seconds, tasks)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / wall, cpu / max(done, 1) * 1e6


def profile(store: type, op: str, seconds: float) -> None:
    async def run() -> int:
        step = (await operations(store))[op]
        for _ in range(200):
            await step()  # warm: every slot's node known, connections open
        profiler.enable()
        done = await run_for(step, seconds, TASKS)
        profiler.disable()
        return done

    profiler = cProfile.Profile()
    ops = asyncio.run(run())
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    by_module: Counter[str] = Counter()
    for (path, _, _), entry in raw.items():
        by_module[_module(path)] += entry[2]
    print(f"{ops} {op}s under cProfile, {total / ops * 1e6:.0f} µs profiled per operation; by module (tottime):")
    for module, spent in by_module.most_common(15):
        print(f"  {spent / ops * 1e6:>7.1f} µs  {spent / total:>5.1%}  {module}")
    print("by function (tottime, top 25):")
    stats.sort_stats("tottime").print_stats(25)


def _module(path: str) -> str:
    """A short name for a source file: the package path from site-packages or the checkout."""
    for marker in ("site-packages/", "/lib/python3", "cache_sessions/"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("cache_sessions/" + tail) if marker == "cache_sessions/" else tail.split("/", 1)[-1]
    return path


if __name__ == "__main__":
    main()
