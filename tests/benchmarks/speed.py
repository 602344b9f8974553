"""Speed of session engines on one Redis server, interleaved round by round.

    python -m tests.benchmarks.speed [--rounds N] [--seconds S] [--quick] [--profile ROW]

Each row (an engine and its cache configuration, on its own DB of one
throwaway redis-server) runs every payload x workload cell once per round,
for a fixed time, rows shuffled within each cell. Ratios to the floor (raw
redis-py) are taken within a round, so a noisy machine slows both sides of a
ratio alike. Round trips are counted on the server (MONITOR), not assumed.
``--profile ROW`` runs that row's small "request" workload under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import itertools
import json
import os
import platform
import pstats
import random
import statistics
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import django
import django_redis
import hiredis
import redis
from django.conf import settings
from django.test import override_settings
from django.utils.module_loading import import_string
from redis.utils import HIREDIS_AVAILABLE

from cache_sessions.embedded import RedisServer
from tests.redis_stats import commands_received

PAYLOADS = ("small", "medium", "large")
WORKLOADS = ("load", "create", "modify+save", "request")
POOL = 256  # sessions created beforehand per row and payload, for load, modify+save and request
WARMUP_OPS, COUNTED_OPS, PROFILE_SECONDS = 50, 20, 3.0
PROBE, CHANGED = "_auth_user_id", "_csrftoken"  # the item a load reads; the one a write changes
ALNUM = string.ascii_letters + string.digits
OURS_CACHE, DJANGO_REDIS = "cache_sessions.cache.RedisCache", "django_redis.cache.RedisCache"
OURS_ENGINE, DJANGO_ENGINE = "cache_sessions.backend", "django.contrib.sessions.backends.cache"
MSGPACK_ZLIB = {
    "SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer",
    "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
}
GOALS: dict[tuple[str, str, str], float] = {  # ratio to the floor, median over rounds
    **{("ours-string", "small", w): g for w, g in zip(WORKLOADS, (0.90, 0.80, 0.85, 0.85), strict=True)},
    ("ours-string", "large", "request"): 0.60,
    **{("ours-hash", "small", w): 0.80 for w in WORKLOADS},
}
WORDS = ["red", "blue", "green", "cotton", "wool", "linen", "shirt", "sock", "scarf", "hat", "coat", "mug", "cup"]

Step = Callable[[int], Any]  # one operation; its argument numbers the operations of a cell
T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    name: str  # also its CACHES alias
    label: str
    db: int
    engine: str | None  # session engine module; None: the raw redis-py floor
    cache: dict[str, Any] | None = None  # its CACHES entry


def make_rows(url: str) -> list[Row]:
    def cache(db: int, backend: str, **options: Any) -> dict[str, Any]:
        return {"BACKEND": backend, "LOCATION": f"{url}/{db}", "OPTIONS": options}

    msgpack, builtin = cache(4, DJANGO_REDIS, **MSGPACK_ZLIB), cache(5, "django.core.cache.backends.redis.RedisCache")
    return [
        Row("ours-string", "ours, string mode", 1, OURS_ENGINE, cache(1, OURS_CACHE, USE_HASH=False)),
        Row("ours-hash", "ours, hash mode", 2, OURS_ENGINE, cache(2, OURS_CACHE, USE_HASH=True)),
        Row("dr-pickle", "cache engine + django-redis (pickle)", 3, DJANGO_ENGINE, cache(3, DJANGO_REDIS)),
        Row("dr-msgpack", "cache engine + django-redis msgpack+zlib", 4, DJANGO_ENGINE, msgpack),
        Row("django-redis-cache", "cache engine + Django's RedisCache", 5, DJANGO_ENGINE, builtin),
        Row("redis-sessions", "django-redis-sessions 0.6.2", 6, "redis_sessions.session"),
        Row("floor", "floor: redis-py GET / SET EX", 7, None),
    ]


def make_payloads() -> dict[str, dict[str, Any]]:
    rng = random.Random(42)
    small = {
        "_auth_user_id": "42",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "".join(rng.choices("0123456789abcdef", k=64)),
        "_csrftoken": "".join(rng.choices(ALNUM, k=32)),
    }

    def cart(items: int) -> list[dict[str, Any]]:
        return [
            {"sku": f"SKU-{rng.randrange(10**6):06d}", "name": " ".join(rng.choices(WORDS, k=3))}
            | {"qty": rng.randint(1, 5), "price": f"{rng.uniform(1, 500):.2f}"}
            for _ in range(items)
        ]

    history = [f"/shop/{rng.choice(WORDS)}/{rng.randrange(10**5)}/?page={rng.randint(1, 9)}" for _ in range(170)]
    large = {**small, "cart": cart(180), "history": history}
    return {"small": small, "medium": {**small, "cart": cart(22)}, "large": large}


def timed(step: Step, seconds: float) -> tuple[int, float]:
    """Run ``step`` back to back for ``seconds`` (gc off); ``(operations, elapsed seconds)``."""
    gc.collect()
    gc.disable()
    try:
        n = 0
        start = now = time.perf_counter()
        deadline = start + seconds
        while now < deadline:
            step(n)
            n += 1
            now = time.perf_counter()
    finally:
        gc.enable()
    return n, now - start


class Bench:
    def __init__(self, server: RedisServer, rows: list[Row]) -> None:
        from cache_sessions.client import sessions_for

        self.rows = rows
        self.control = redis.Redis(host="127.0.0.1", port=server.port)
        self.admin = {row.name: redis.Redis(host="127.0.0.1", port=server.port, db=row.db) for row in rows}
        self.floor = redis.Redis(host="127.0.0.1", port=server.port, db=rows[-1].db)  # a pool of its own
        self.stores = {row.name: import_string(f"{row.engine}.SessionStore") for row in rows if row.engine}
        self.payloads = make_payloads()
        self.values = {name: sessions_for("ours-string").codec.encode(p) for name, p in self.payloads.items()}
        hashed = {name: sessions_for("ours-hash").codec.encode(p, expires_at=1) for name, p in self.payloads.items()}
        self.sizes = {
            name: f"JSON {len(json.dumps(p))} B; ours: {len(self.values[name])} B string, {len(hashed[name])} B hash"
            for name, p in self.payloads.items()
        }
        rng = random.Random(7)
        self.tokens = ["".join(rng.choices(ALNUM, k=32)) for _ in range(61)]
        self.ttl: int = settings.SESSION_COOKIE_AGE
        self.pools: dict[tuple[str, str], list[Any]] = {}
        self.new_keys = itertools.count()

    def creator(self, row: Row, payload: str) -> Step:
        """The create operation of a row; it returns the new key."""
        if row.engine is None:
            set_, value, ttl, new_keys = self.floor.set, self.values[payload], self.ttl, self.new_keys

            def create_raw(n: int) -> bytes:
                key = b"floor:%d" % next(new_keys)
                set_(key, value, ex=ttl)
                return key

            return create_raw
        store, data = self.stores[row.name], self.payloads[payload]

        def create(n: int) -> str:
            session = store()
            session.update(data)
            session.save()
            return session.session_key

        return create

    def prepare(self, row: Row, payload: str, workload: str) -> Step:
        """Everything a cell needs before its timing starts; returns its operation."""
        create = self.creator(row, payload)
        if workload == "create":
            return create
        if (row.name, payload) not in self.pools:
            self.pools[(row.name, payload)] = [create(n) for n in range(POOL)]
        keys, tokens = self.pools[(row.name, payload)], self.tokens
        if row.engine is None:
            get, set_, value, ttl = self.floor.get, self.floor.set, self.values[payload], self.ttl
            steps: dict[str, Step] = {
                "load": lambda n: get(keys[n % POOL]),
                "modify+save": lambda n: set_(keys[n % POOL], value, ex=ttl),
                "request": lambda n: (get(keys[n % POOL]), set_(keys[n % POOL], value, ex=ttl)),
            }
            return steps[workload]
        store = self.stores[row.name]
        if workload == "load":
            return lambda n: store(keys[n % POOL])[PROBE]
        if workload == "modify+save":
            loaded = [store(key) for key in keys]
            assert all(session[PROBE] == "42" for session in loaded)  # loaded now, outside the timing
        else:
            loaded = []

        def write(n: int) -> None:
            session = loaded[n % POOL] if loaded else store(keys[n % POOL])
            session[CHANGED] = tokens[n % len(tokens)]  # a fresh store loads its session here
            session.save()

        return write

    def cell(self, row: Row, payload: str, workload: str, body: Callable[[Step], T]) -> T:
        """``body(operation)`` for one row, payload and workload; a create cell's keys are dropped after."""
        # Our engine reads SESSION_CACHE_ALIAS on use, Django's cache engine in its __init__.
        with override_settings(SESSION_CACHE_ALIAS=row.name):
            result = body(self.prepare(row, payload, workload))
        if workload == "create":
            self.admin[row.name].flushdb()
            self.pools = {cell: keys for cell, keys in self.pools.items() if cell[0] != row.name}
        return result

    def count(self, step: Step) -> Counter[str]:
        """Commands the server receives for COUNTED_OPS operations (Lua's own calls left out)."""
        with commands_received(self.control) as received:
            for n in range(COUNTED_OPS):
                step(n)
        return received


def configure(server: RedisServer, rows: list[Row]) -> None:
    caches = {row.name: row.cache for row in rows if row.cache}
    db = next(row.db for row in rows if row.name == "redis-sessions")
    settings.configure(
        SECRET_KEY="speed-benchmark",
        USE_TZ=True,
        INSTALLED_APPS=[],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, **caches},
        SESSION_CACHE_ALIAS=rows[0].name,
        SESSION_REDIS={"host": "127.0.0.1", "port": server.port, "db": db, "prefix": "session"},
    )
    django.setup()


def commands(received: Counter[str]) -> str:
    """``get+get+set`` for whole numbers per operation, ``namex0.50`` otherwise."""
    per_op = {name: calls / COUNTED_OPS for name, calls in received.items()}
    return "+".join("+".join([k] * int(v)) if v.is_integer() else f"{k}x{v:.2f}" for k, v in per_op.items()) or "-"


def report(
    bench: Bench, rates: dict[tuple[str, ...], list[float]], counts: dict[tuple[str, ...], Counter[str]]
) -> None:
    missed = []
    line = "  {:<42} {:>8} {:>7} {:>11} {:>6}  {:<20} {:<8} {}"
    for payload in PAYLOADS:
        for workload in WORKLOADS:
            print(f"\n{payload} payload ({bench.sizes[payload]}): {workload}")
            print(line.format("engine", "ops/s", "xfloor", "min-max", "RT/op", "commands", "goal", "ahead"))
            floor = rates[("floor", payload, workload)]
            medians = {row.name: statistics.median(rates[(row.name, payload, workload)]) for row in bench.rows}
            best_other = max(medians[row.name] for row in bench.rows if row.engine not in (None, OURS_ENGINE))
            for row in bench.rows:
                ratios = [ops / base for ops, base in zip(rates[(row.name, payload, workload)], floor, strict=True)]
                ratio, received = statistics.median(ratios), counts[(row.name, payload, workload)]
                goal = GOALS.get((row.name, payload, workload))
                if goal is not None and ratio < goal:
                    missed.append(f"{row.name} {payload} {workload}: {ratio:.3f} < {goal:.2f}")
                goal_text = "" if goal is None else f"≥{goal:.2f} {'✓' if ratio >= goal else '✗'}"
                ahead = "" if row.engine != OURS_ENGINE else "✓" if medians[row.name] > best_other else "✗"
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
                rt = f"{sum(received.values()) / COUNTED_OPS:.2f}"
                figures = (
                    f"{medians[row.name]:,.0f}",
                    f"{ratio:.2f}",
                    spread,
                    rt,
                    commands(received),
                    goal_text,
                    ahead,
                )
                print(line.format(row.label, *figures))
    print(f"\ngoals: {len(GOALS) - len(missed)} of {len(GOALS)} met" + "".join(f"\n  missed: {m}" for m in missed))
    get = 1e6 / statistics.median(rates[("floor", "small", "load")])
    print(f"floor: {get:.0f} µs per GET round trip (small load, median); the longer it is, the nearer 1 every ratio")


def header(server: RedisServer, bench: Bench, rounds: int, seconds: float) -> None:
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, django-redis {django_redis.__version__}, "
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__} (used by redis-py: {HIREDIS_AVAILABLE})\n"
        f"Redis server {bench.control.info('server')['redis_version']} ({server.binary}, hash-max-listpack-value "
        f"256), {os.cpu_count()} CPUs, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n"
        f"{rounds} rounds x {seconds} s per row per cell, rows shuffled in each cell. ops/s: median over rounds; "
        "xfloor: median of the per-round ratios to the floor; min-max: of those ratios.\n"
        "load: SessionStore(key)[item]. create: SessionStore(), update(payload), save(). modify+save: change one "
        "item of a session loaded beforehand (untimed), save(). request: load, change one item, save().\n"
        f"RT/op: commands the server received per operation ({COUNTED_OPS} ops under MONITOR, Lua's own calls "
        "left out). ahead: ours beats every engine that is neither ours nor the floor."
    )


def profile(bench: Bench, row: Row) -> None:
    with override_settings(SESSION_CACHE_ALIAS=row.name):
        step = bench.prepare(row, "small", "request")
        for n in range(500):
            step(n)
        profiler = cProfile.Profile()
        profiler.enable()
        ops, elapsed = timed(step, PROFILE_SECONDS)
        profiler.disable()
    print(f"{row.label}: small request, {ops} ops in {elapsed:.2f} s under cProfile ({ops / elapsed:,.0f} ops/s)")
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for title, column in (("cumulative", 3), ("tottime", 2)):
        print(f"\ntop 25 by {title}, per operation\n{'calls':>7} {'tottime µs':>10} {'cumtime µs':>10}  function")
        for (file, line, name), (_, calls, tottime, cumtime, _) in sorted(
            stats.items(), key=lambda item: item[1][column], reverse=True
        )[:25]:
            where = file.split("site-packages/")[-1].removeprefix(os.getcwd() + "/")
            print(
                f"{calls / ops:>7.2f} {tottime / ops * 1e6:>10.2f} {cumtime / ops * 1e6:>10.2f}  {where}:{line}({name})"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help="default 7 (--quick: 3)")
    parser.add_argument("--seconds", type=float, help="per row, cell and round; default 0.5 (--quick: 0.2)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", metavar="ROW", help="profile ROW's small request workload (a row name)")
    args = parser.parse_args(argv)
    rounds, seconds = args.rounds or (3 if args.quick else 7), args.seconds or (0.2 if args.quick else 0.5)
    server = RedisServer(config={"hash-max-listpack-value": "256"}).start()
    try:
        rows = make_rows(server.url)
        if args.profile and args.profile not in {row.name for row in rows}:
            parser.error(f"--profile: choose one of {', '.join(row.name for row in rows)}")
        configure(server, rows)  # before django-redis-sessions is imported: it reads settings at import
        bench = Bench(server, rows)
        if args.profile:
            return profile(bench, next(row for row in rows if row.name == args.profile))
        header(server, bench, rounds, seconds)
        cells = [(payload, workload) for payload in PAYLOADS for workload in WORKLOADS]
        for row in rows:  # warm-up: connections open, scripts loaded, every code path taken once
            for p, w in cells:
                bench.cell(row, p, w, lambda step: [step(n) for n in range(WARMUP_OPS)])
        counts = {(row.name, p, w): bench.cell(row, p, w, bench.count) for row in rows for p, w in cells}
        gc.collect()
        gc.freeze()  # everything alive now is left out of later collections: gc.collect() between cells is cheap
        time.sleep(0.5)  # let the server settle
        rates: dict[tuple[str, ...], list[float]] = {(row.name, p, w): [] for row in rows for p, w in cells}
        rng = random.Random(2024)
        for number in range(rounds):
            began = time.perf_counter()
            for payload, workload in cells:
                for row in rng.sample(rows, len(rows)):
                    done, elapsed = bench.cell(row, payload, workload, lambda step: timed(step, seconds))
                    rates[(row.name, payload, workload)].append(done / elapsed)
            print(f"round {number + 1}/{rounds}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        report(bench, rates, counts)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
