"""Speed of session engines on one Redis server, interleaved round by round.

    python -m tools.benchmarks.speed [--rounds N] [--seconds S] [--quick] [--rows A,B,...]
                                     [--compare REV] [--profile ROW [--cell PAYLOAD:WORKLOAD]]

Each row (an engine and its cache configuration, on its own DB of one
throwaway redis-server) runs every payload x workload cell once per round,
for a fixed time, rows shuffled within each cell. Each timed cell gives both
wall-clock operations per second and client CPU per operation
(``time.process_time``: this process's user + system time). Ratios to the
floor (raw redis-py) are taken within a round, so a noisy machine slows both
sides of a ratio alike; the tables give the median over rounds and the
spread (min-max) of the per-round ratios.

Round trips are counted on the client's sockets (``tests/support/redis_stats.py``).
The server's CPU per operation comes from ``INFO commandstats``, reset
before and read after a batch of operations of one cell (rows shuffled,
median of rounds): ``usec_per_call`` of each command, and their sum per
operation over the commands the client sent (the calls a script makes are
listed beside it; their time is inside the script's).

``--compare REV`` adds rows for cache_sessions as it is at git revision REV
(the package exported into a temporary directory under another name), so a
change is measured side by side with what came before, in one run.
``--profile ROW`` runs one cell of that row (default small:request) under cProfile.
Nothing here asserts on times: it prints tables.
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
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import django
import django_redis
import hiredis
import redis
from django.conf import settings
from django.test import override_settings
from django.utils.module_loading import import_string
from redis.utils import HIREDIS_AVAILABLE

from cache_sessions.testing import RedisServer
from tests.support.redis_stats import Sent, sent_by_every_connection

PAYLOADS = ("small", "medium", "large")
WORKLOADS = ("load", "create", "modify+save", "request")
SERVER_WORKLOADS = ("load", "create", "modify+save")  # a request is a load plus a modify+save
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
GOALS: dict[tuple[str, str, str], float] = {  # wall clock, ratio to the floor, median over rounds (round 1)
    **{("ours-string", "small", w): g for w, g in zip(WORKLOADS, (0.90, 0.80, 0.85, 0.85), strict=True)},
    ("ours-string", "large", "request"): 0.60,
    **{("ours-hash", "small", w): 0.80 for w in WORKLOADS},
}
# Client CPU goals (issue 12): ours at or below every other engine; a large load at most
# 0.75x the CPU of Django's cache engine with pickle; hash mode within 10% of string mode.
PICKLE_ROW, LARGE_LOAD_GOAL, HASH_VS_STRING_GOAL = "dr-pickle", 0.75, 1.10
# Commands that are the benchmark's own, or a connection's set-up, not an operation's.
NOT_AN_OPERATION = ("config", "info", "client", "select", "hello", "flushdb")
WORDS = ["red", "blue", "green", "cotton", "wool", "linen", "shirt", "sock", "scarf", "hat", "coat", "mug", "cup"]

Step = Callable[[int], Any]  # one operation; its argument numbers the operations of a cell
T = TypeVar("T")
Cell = tuple[str, str, str]  # row name, payload, workload


@dataclass(frozen=True)
class Row:
    name: str  # also its CACHES alias
    label: str
    db: int
    engine: str | None  # session engine module; None: the raw redis-py floor
    cache: dict[str, Any] | None = None  # its CACHES entry
    ours: bool = False  # cache_sessions, now or at the --compare revision


@dataclass(frozen=True)
class Timing:
    """One timed cell of one round."""

    ops: int
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU (user + system)

    @property
    def rate(self) -> float:
        return self.ops / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.ops * 1e6


def make_rows(url: str, compare: str | None = None) -> list[Row]:
    def cache(db: int, backend: str, **options: Any) -> dict[str, Any]:
        return {"BACKEND": backend, "LOCATION": f"{url}/{db}", "OPTIONS": options}

    msgpack, builtin = cache(4, DJANGO_REDIS, **MSGPACK_ZLIB), cache(5, "django.core.cache.backends.redis.RedisCache")
    rows = [
        Row("ours-string", "ours, string mode", 1, OURS_ENGINE, cache(1, OURS_CACHE, USE_HASH=False), ours=True),
        Row("ours-hash", "ours, hash mode", 2, OURS_ENGINE, cache(2, OURS_CACHE, USE_HASH=True), ours=True),
    ]
    if compare:
        package = package_name(compare)
        backend, client = f"{package}.cache.RedisCache", f"{package}.client.SessionClient"
        for db, mode, use_hash in ((8, "string", False), (9, "hash", True)):
            options = cache(db, backend, USE_HASH=use_hash, CLIENT_CLASS=client)
            rows.append(
                Row(f"{compare}-{mode}", f"ours at {compare}, {mode} mode", db, f"{package}.backend", options, True)
            )
    return [
        *rows,
        Row("dr-pickle", "cache engine + django-redis (pickle)", 3, DJANGO_ENGINE, cache(3, DJANGO_REDIS)),
        Row("dr-msgpack", "cache engine + django-redis msgpack+zlib", 4, DJANGO_ENGINE, msgpack),
        Row("django-redis-cache", "cache engine + Django's RedisCache", 5, DJANGO_ENGINE, builtin),
        Row("redis-sessions", "django-redis-sessions 0.6.2", 6, "redis_sessions.session"),
        Row("floor", "floor: redis-py GET / SET EX", 7, None),
    ]


def package_name(revision: str) -> str:
    return "cache_sessions_at_" + "".join(c if c.isalnum() else "_" for c in revision)


def export_revision(revision: str) -> Path:
    """cache_sessions as it is at git ``revision``, importable as ``package_name(revision)``."""
    where = Path(tempfile.mkdtemp(prefix="speed-compare-"))
    archive = subprocess.run(["git", "archive", revision, "cache_sessions"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    package = where / package_name(revision)
    (where / "cache_sessions").rename(package)
    for module in package.rglob("*.py"):  # absolute self-references: the CLIENT_CLASS default, checks
        module.write_text(module.read_text().replace('"cache_sessions.', f'"{package.name}.'))
    sys.path.insert(0, str(where))
    return where


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


def timed(step: Step, seconds: float) -> Timing:
    """Run ``step`` back to back for ``seconds`` (gc off): operations, wall clock and CPU."""
    gc.collect()
    gc.disable()
    try:
        n = 0
        cpu = time.process_time()
        start = now = time.perf_counter()
        deadline = start + seconds
        while now < deadline:
            step(n)
            n += 1
            now = time.perf_counter()
        cpu = time.process_time() - cpu
    finally:
        gc.enable()
    return Timing(n, now - start, cpu)


class Bench:
    def __init__(self, server: RedisServer, rows: list[Row]) -> None:
        from cache_sessions.storage.registry import sessions_for

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

    def count(self, step: Step) -> Sent:
        """What the client sends for COUNTED_OPS operations: round trips and commands."""
        with sent_by_every_connection() as sent:
            for n in range(COUNTED_OPS):
                step(n)
        return sent

    def server_cpu(self, ops: int) -> Callable[[Step], dict[str, tuple[int, int]]]:
        """A cell body: ``{command: (calls, usec)}`` the server spent on ``ops`` operations."""

        def body(step: Step) -> dict[str, tuple[int, int]]:
            self.control.config_resetstat()
            for n in range(ops):
                step(n)
            stats = self.control.info("commandstats")
            return {
                name.removeprefix("cmdstat_"): (figures["calls"], figures["usec"])
                for name, figures in stats.items()
                if not name.removeprefix("cmdstat_").startswith(NOT_AN_OPERATION)
            }

        return body


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


def commands(sent: Sent) -> str:
    """``get+get+set`` for whole numbers per operation, ``namex0.50`` otherwise."""
    per_op = {name: calls / COUNTED_OPS for name, calls in sent.commands.items()}
    return "+".join("+".join([k] * int(v)) if v.is_integer() else f"{k}x{v:.2f}" for k, v in per_op.items()) or "-"


def ratios(values: list[float], floor: list[float]) -> list[float]:
    return [value / base for value, base in zip(values, floor, strict=True)]


def spread(values: Iterable[float]) -> str:
    values = list(values)
    return f"{min(values):.2f}-{max(values):.2f}"


def report_wall(bench: Bench, timings: dict[Cell, list[Timing]], counts: dict[Cell, Sent]) -> None:
    missed = []
    line = "  {:<42} {:>8} {:>7} {:>11} {:>6}  {:<20} {:<8} {}"
    print("\n== Wall clock: operations per second, and the ratio to the floor (higher is better) ==")
    for payload in PAYLOADS:
        for workload in WORKLOADS:
            print(f"\n{payload} payload ({bench.sizes[payload]}): {workload}")
            print(line.format("engine", "ops/s", "xfloor", "min-max", "RT/op", "commands", "goal", "ahead"))
            floor = [t.rate for t in timings[("floor", payload, workload)]]
            medians = {
                row.name: statistics.median(t.rate for t in timings[(row.name, payload, workload)])
                for row in bench.rows
            }
            # None when only our rows (and the floor) run: nobody to be ahead of.
            best_other = max((medians[row.name] for row in bench.rows if row.engine and not row.ours), default=None)
            for row in bench.rows:
                per_round = ratios([t.rate for t in timings[(row.name, payload, workload)]], floor)
                ratio, sent = statistics.median(per_round), counts[(row.name, payload, workload)]
                goal = GOALS.get((row.name, payload, workload))
                if goal is not None and ratio < goal:
                    missed.append(f"{row.name} {payload} {workload}: {ratio:.3f} < {goal:.2f}")
                goal_text = "" if goal is None else f"≥{goal:.2f} {'✓' if ratio >= goal else '✗'}"
                ahead = "" if not row.ours or best_other is None else "✓" if medians[row.name] > best_other else "✗"
                figures = (
                    f"{medians[row.name]:,.0f}",
                    f"{ratio:.2f}",
                    spread(per_round),
                    f"{sent.round_trips / COUNTED_OPS:.2f}",
                    commands(sent),
                    goal_text,
                    ahead,
                )
                print(line.format(row.label, *figures))
    goals = sum(1 for name, _, _ in GOALS if name in {row.name for row in bench.rows})  # of the rows that ran
    print(f"\ngoals: {goals - len(missed)} of {goals} met" + "".join(f"\n  missed: {m}" for m in missed))
    get = 1e6 / statistics.median(t.rate for t in timings[("floor", "small", "load")])
    print(f"floor: {get:.0f} µs per GET round trip (small load, median); the longer it is, the nearer 1 every ratio")


def report_cpu(bench: Bench, timings: dict[Cell, list[Timing]]) -> None:
    print(
        "\n== Client CPU: µs of time.process_time per operation (median of rounds), xfloor: median of the "
        "per-round ratios to the floor's CPU [their min-max] (lower is better) =="
    )
    width = 24
    for payload in PAYLOADS:
        print(f"\n{payload} payload ({bench.sizes[payload]})")
        print(f"  {'engine':<42}" + "".join(f" {workload:>{width}}" for workload in WORKLOADS))
        for row in bench.rows:
            cells = []
            for workload in WORKLOADS:
                cpu = [t.cpu_us for t in timings[(row.name, payload, workload)]]
                if row.engine is None:
                    cells.append(f"{statistics.median(cpu):.0f} [{min(cpu):.0f}-{max(cpu):.0f}]")
                    continue
                per_round = ratios(cpu, [t.cpu_us for t in timings[("floor", payload, workload)]])
                cells.append(f"{statistics.median(cpu):.0f} x{statistics.median(per_round):.2f} [{spread(per_round)}]")
            print(f"  {row.label:<42}" + "".join(f" {cell:>{width}}" for cell in cells))
    cpu_goals(bench, timings)


def cpu_goals(bench: Bench, timings: dict[Cell, list[Timing]]) -> None:
    """Issue 12's client-CPU goals, on medians of per-round ratios (rows of one round ran side by side)."""

    def versus(a: str, b: str, payload: str, workload: str) -> float:
        mine, theirs = (timings.get((name, payload, workload)) for name in (a, b))
        assert mine is not None and theirs is not None
        return statistics.median(ratios([t.cpu_us for t in mine], [t.cpu_us for t in theirs]))

    others = [row.name for row in bench.rows if row.engine and not row.ours]
    names = {row.name for row in bench.rows}
    print("\nclient CPU goals (medians of per-round ratios):")
    for mode in ("ours-string", "ours-hash"):
        if mode not in names:
            continue
        worst = max(
            ((versus(mode, other, p, w), other, p, w) for other in others for p in PAYLOADS for w in WORKLOADS),
            default=None,
        )
        if worst is not None:
            ratio, other, p, w = worst
            print(
                f"  {mode} at or below every other engine: worst {ratio:.2f}x {other} ({p} {w}) "
                + ("✓" if ratio <= 1 else "✗")
            )
        if PICKLE_ROW in names:
            ratio = versus(mode, PICKLE_ROW, "large", "load")
            verdict = "✓" if ratio <= LARGE_LOAD_GOAL else "✗"
            print(f"  {mode} large load vs pickle: {ratio:.2f}x (goal ≤ {LARGE_LOAD_GOAL}) {verdict}")
    pairs = [("ours-hash", "ours-string", "")]
    pairs += [
        (row.name, row.name.replace("-hash", "-string"), f" at {row.name[:-5]}")
        for row in bench.rows
        if row.ours and row.name.endswith("-hash") and row.name != "ours-hash"
    ]  # --compare's
    for hashed, stringed, where in pairs:
        if not {hashed, stringed} <= names:
            continue
        worst = max((versus(hashed, stringed, p, w), p, w) for p in PAYLOADS for w in WORKLOADS)
        verdict = "✓" if worst[0] <= HASH_VS_STRING_GOAL else "✗"
        print(
            f"  hash mode vs string mode{where}: worst {worst[0]:.2f}x ({worst[1]} {worst[2]}) "
            f"(goal ≤ {HASH_VS_STRING_GOAL}) {verdict}"
        )


def report_server(
    bench: Bench, stats: dict[Cell, list[dict[str, tuple[int, int]]]], counts: dict[Cell, Sent], ops: int
) -> None:
    print(
        f"\n== Redis CPU: INFO commandstats per operation ({ops} operations per row, cell and round; "
        "median of rounds). "
        "sum: µs per operation over the commands the client sent; each command: calls per operation x usec_per_call; "
        "in (...): the calls scripts made, inside the script's time =="
    )
    line = "  {:<42} {:<12} {:>6} {:>11}  {}"
    for payload in PAYLOADS:
        print(f"\n{payload} payload ({bench.sizes[payload]})")
        print(line.format("engine", "operation", "sum µs", "min-max", "commands"))
        for row in bench.rows:
            for workload in SERVER_WORKLOADS:
                rounds = stats[(row.name, payload, workload)]
                sent = set(counts[(row.name, payload, workload)].commands)
                sums = [sum(usec for name, (_, usec) in r.items() if name in sent) / ops for r in rounds]
                names = sorted({name for r in rounds for name in r}, key=lambda name: (name not in sent, name))
                parts = []
                for name in names:
                    calls = statistics.median(r.get(name, (0, 0))[0] / ops for r in rounds)
                    per_call = statistics.median(r[name][1] / r[name][0] for r in rounds if r.get(name, (0, 0))[0])
                    text = f"{name} {calls:.2f}x{per_call:.2f}"
                    parts.append(text if name in sent else f"({text})")
                figures = f"{statistics.median(sums):.2f}", f"{min(sums):.2f}-{max(sums):.2f}", " ".join(parts)
                print(line.format(row.label, workload, *figures))


def header(server: RedisServer, bench: Bench, rounds: int, seconds: float) -> None:
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, django-redis {django_redis.__version__}, "
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__} (used by redis-py: {HIREDIS_AVAILABLE})\n"
        f"Redis server {bench.control.info('server')['redis_version']} ({server.binary}, hash-max-listpack-value "
        f"256), {os.cpu_count()} CPUs, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n"
        f"{rounds} rounds x {seconds} s per row per cell, rows shuffled in each cell.\n"
        "load: SessionStore(key)[item]. create: SessionStore(), update(payload), save(). modify+save: change one "
        "item of a session loaded beforehand (untimed), save(). request: load, change one item, save().\n"
        f"RT/op: round trips per operation, counted on the client's sockets ({COUNTED_OPS} ops). "
        "ahead: ours beats every engine that is neither ours nor the floor."
    )


def profile(bench: Bench, row: Row, payload: str, workload: str) -> None:
    with override_settings(SESSION_CACHE_ALIAS=row.name):
        step = bench.prepare(row, payload, workload)
        for n in range(500):
            step(n)
        profiler = cProfile.Profile()
        profiler.enable()
        timing = timed(step, PROFILE_SECONDS)
        profiler.disable()
    ops = timing.ops
    print(
        f"{row.label}: {payload} {workload}, {ops} ops in {timing.wall:.2f} s under cProfile ({timing.rate:,.0f} ops/s)"
    )
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
    parser.add_argument("--server-ops", type=int, help="operations per Redis CPU batch; default 1000 (--quick: 300)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", help="only these rows (comma-separated names; the floor is always kept)")
    parser.add_argument("--compare", metavar="REV", help="add rows for cache_sessions at git revision REV")
    parser.add_argument("--profile", metavar="ROW", help="profile one cell of ROW (a row name)")
    parser.add_argument(
        "--cell", default="small:request", help="PAYLOAD:WORKLOAD for --profile (default small:request)"
    )
    args = parser.parse_args(argv)
    rounds, seconds = args.rounds or (3 if args.quick else 7), args.seconds or (0.2 if args.quick else 0.5)
    server_ops = args.server_ops or (300 if args.quick else 1000)
    exported = export_revision(args.compare) if args.compare else None
    server = RedisServer(config={"hash-max-listpack-value": "256"}).start()
    try:
        rows = all_rows = make_rows(server.url, args.compare)
        if args.rows:
            wanted = set(args.rows.split(",")) | {"floor"}
            if unknown := wanted - {row.name for row in rows}:
                parser.error(
                    f"--rows: no row {', '.join(sorted(unknown))}; choose among {', '.join(r.name for r in rows)}"
                )
            rows = [row for row in rows if row.name in wanted]
        if args.profile and args.profile not in {row.name for row in rows}:
            parser.error(f"--profile: choose one of {', '.join(row.name for row in rows)}")
        configure(server, all_rows)  # before django-redis-sessions is imported: it reads settings at import
        bench = Bench(server, rows)
        if args.profile:
            payload, workload = args.cell.split(":")
            return profile(bench, next(row for row in rows if row.name == args.profile), payload, workload)
        header(server, bench, rounds, seconds)
        cells = [(payload, workload) for payload in PAYLOADS for workload in WORKLOADS]
        for row in rows:  # warm-up: connections open, scripts loaded, every code path taken once
            for p, w in cells:
                bench.cell(row, p, w, lambda step: [step(n) for n in range(WARMUP_OPS)])
        counts = {(row.name, p, w): bench.cell(row, p, w, bench.count) for row in rows for p, w in cells}
        gc.collect()
        gc.freeze()  # everything alive now is left out of later collections: gc.collect() between cells is cheap
        time.sleep(0.5)  # let the server settle
        timings: dict[Cell, list[Timing]] = {(row.name, p, w): [] for row in rows for p, w in cells}
        rng = random.Random(2024)
        for number in range(rounds):
            began = time.perf_counter()
            for payload, workload in cells:
                for row in rng.sample(rows, len(rows)):
                    timings[(row.name, payload, workload)].append(
                        bench.cell(row, payload, workload, lambda step: timed(step, seconds))
                    )
            print(f"round {number + 1}/{rounds}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        server_rounds = max(3, rounds // 2)
        server_stats: dict[Cell, list[dict[str, tuple[int, int]]]] = {
            (row.name, p, w): [] for row in rows for p in PAYLOADS for w in SERVER_WORKLOADS
        }
        for number in range(server_rounds):
            for payload in PAYLOADS:
                for workload in SERVER_WORKLOADS:
                    for row in rng.sample(rows, len(rows)):
                        stats = bench.cell(row, payload, workload, bench.server_cpu(server_ops))
                        server_stats[(row.name, payload, workload)].append(stats)
            print(f"Redis CPU round {number + 1}/{server_rounds}", file=sys.stderr, flush=True)
        report_cpu(bench, timings)
        report_server(bench, server_stats, counts, server_ops)
        report_wall(bench, timings, counts)
    finally:
        server.stop()
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)


if __name__ == "__main__":
    main()
