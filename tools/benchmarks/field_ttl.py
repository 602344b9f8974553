"""Hash mode with field TTLs (Redis 8's HSETEX/HGETEX) against today's layout: Redis CPU and bytes.

    python -m tools.benchmarks.field_ttl [--dataset N] [--sessions N,N] [--ops N] [--rounds R]
                                         [--compare REV] [--quick]
    make bench NAME=field_ttl SERVER=redis8 [BENCH_ARGS="--compare REV"]

One throwaway server (``SERVER=``) with README's hash-max-listpack-value 256, and
logged-in sessions (4 entries, two-week TTL) over 16,384 buckets, named and
encoded by the engine of this checkout.

1. Redis CPU per operation (INFO commandstats, reset before each batch of
   ``--ops`` operations; probes interleaved, medians over ``--rounds``), on
   ``--dataset`` sessions per row, each row in a DB of its own:
   - the engine as it is in this checkout (and at git revision REV with
     ``--compare``), through ``SessionStore``: load, save (of a session loaded
     before the batch), create, delete, in hash and string mode. ``sum`` adds
     up the commands the client sent; a script's inner calls are listed in
     brackets (their time is inside the script's). Hash-mode saves sweep
     their bucket now and then, as the engine does;
   - the commands a hash mode without Lua would send, on a dataset written with
     field TTLs (``HSETEX FNX``, the value without the 4-byte expiry of its
     header): ``HGET`` (load), ``HSETEX FXX`` (save), ``HSETEX FNX`` of a new
     field (create), ``HDEL`` (delete), ``HGETEX EX`` (a load that also slides
     the expiry).
2. Bytes per session (INFO used_memory delta / sessions) at each ``--sessions``:
   today's layout written raw (``HSET`` of the value with its expiry, the
   bucket's ``EXPIRE``); field TTLs (``HSETEX FNX EX``), the value without and
   with its expiry; the engine's own hash-mode writes (``SessionStore``, one
   round trip each: the slow rows).

Field-TTL rows need HSETEX (Redis 8.0+, Valkey 9.0+); elsewhere they are left
out. After hash mode changes, ``--compare REV`` (a commit before the change)
prints the engine as it was beside the engine as it is, in one run. Nothing
here asserts: it prints.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import random
import shutil
import statistics
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import django
import redis
from django.conf import settings
from django.test import override_settings
from django.utils.module_loading import import_string

from cache_sessions.testing import RedisServer
from tests.support.redis_stats import sent_by_every_connection
from tests.support.servers import RECOMMENDED
from tools.benchmarks.speed import export_revision, package_name

TTL = 1_209_600  # two weeks: Django's SESSION_COOKIE_AGE
BUCKETS = 16_384
KEY_CHARS = string.ascii_lowercase + string.digits
ALPHANUMERIC = string.ascii_letters + string.digits
CHANGED = "_csrftoken"  # the entry a save changes
BATCH = 1000  # commands per pipeline round trip when writing raw rows
RAW_DB, WARMUP = 15, 50
Batch = Callable[[], object]  # one batch of operations: what a reading of the stats covers
Probe = Callable[[int], Batch]  # prepares (untimed) a batch of N operations
T = TypeVar("T")
Stats = dict[str, tuple[float, float]]  # {command: (calls per operation, µs per call)}


def session(i: int) -> dict[str, str]:
    """The i-th logged-in session, as Django writes one (a hex auth hash, an alphanumeric
    CSRF secret): the same bytes in every run and row."""
    digest = hashlib.sha256(b"%d" % i).digest()
    return {
        "_auth_user_id": str(100_000 + i % 900_000),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": digest.hex(),
        "_csrftoken": "".join(ALPHANUMERIC[byte % len(ALPHANUMERIC)] for byte in digest),
    }


def session_keys(seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    while True:
        yield "".join(rng.choices(KEY_CHARS, k=32))


def take(keys: Iterator[str], n: int) -> list[str]:
    return [next(keys) for _ in range(n)]


@dataclass(frozen=True)
class Engine:
    """One engine row: its CACHES alias (a DB of its own) and its ``SessionStore``."""

    name: str
    alias: str
    db: int
    store: Any

    def run(self, work: Callable[[], T]) -> Callable[[], T]:
        def inside() -> T:
            with override_settings(SESSION_CACHE_ALIAS=self.alias):
                return work()

        return inside

    def fill(self, n: int) -> list[str]:
        """Create ``n`` sessions; their keys (the engine picks them, as it does for a site)."""

        def create(i: int) -> str:
            one = self.store()
            one.update(session(i))
            one.save()
            return str(one.session_key)

        return self.run(lambda: [create(i) for i in range(n)])()

    def probes(self, live: list[str], doomed: Iterator[str], rng: random.Random) -> dict[str, Probe]:
        store = self.store

        def load(ops: int) -> Batch:
            keys = rng.sample(live, ops)
            return self.run(lambda: [store(key).load() for key in keys])

        def save(ops: int) -> Batch:
            loaded = [store(key) for key in rng.sample(live, ops)]
            for n, one in enumerate(loaded):
                self.run(lambda one=one, n=n: one.__setitem__(CHANGED, f"{n:032d}"))()  # loads it now
            return self.run(lambda: [one.save() for one in loaded])

        def create(ops: int) -> Batch:
            def new() -> None:
                one = store()
                one.update(session(0))
                one.save()

            return self.run(lambda: [new() for _ in range(ops)])

        def delete(ops: int) -> Batch:
            keys = take(doomed, ops)
            return self.run(lambda: [store(key).delete() for key in keys])

        return {"load": load, "save": save, "create": create, "delete": delete}


def encoded(layout: Any, i: int, expiry: bool) -> bytes:
    """The i-th session's value as hash mode stores it (``expiry``: with the expiry in its header)."""
    return bytes(layout.codec.encode(session(i), expires_at=int(time.time()) + TTL if expiry else None))


class Raw:
    """Commands sent as they are, with the engine's names and values (``layout``: its hash-mode storage)."""

    def __init__(self, on: redis.Redis, layout: Any) -> None:
        self.on, self.layout = on, layout

    def place(self, key: str) -> tuple[bytes, bytes]:
        bucket, field = self.layout.locate(key)[:2]
        return bucket, field

    def hsetex(self, key: str, i: int, mode: str, expiry: bool = False) -> tuple[Any, ...]:
        bucket, field = self.place(key)
        return ("HSETEX", bucket, mode, "EX", TTL, "FIELDS", 1, field, encoded(self.layout, i, expiry))

    def today(self, key: str, i: int) -> list[tuple[Any, ...]]:
        """What the WRITE script leaves: the value with its expiry in its header; the bucket's TTL."""
        bucket, field = self.place(key)
        return [("HSET", bucket, field, encoded(self.layout, i, expiry=True)), ("EXPIRE", bucket, TTL)]

    def fill(self, keys: Sequence[str], commands: Callable[[str, int], list[tuple[Any, ...]]]) -> None:
        pipe = self.on.pipeline(transaction=False)
        for i, key in enumerate(keys):
            for command in commands(key, i):
                pipe.execute_command(*command)
            if len(pipe) >= BATCH:
                pipe.execute()
        pipe.execute()

    def probes(
        self, live: list[str], doomed: Iterator[str], new: Iterator[str], rng: random.Random
    ) -> dict[str, Probe]:
        def each(command: Callable[[str], tuple[Any, ...]], keys: Callable[[int], list[str]]) -> Probe:
            def prepare(ops: int) -> Batch:
                commands = [command(key) for key in keys(ops)]
                return lambda: [self.on.execute_command(*one) for one in commands]

            return prepare

        def sample(n: int) -> list[str]:
            return rng.sample(live, n)

        def hgetex(key: str) -> tuple[Any, ...]:
            bucket, field = self.place(key)
            return ("HGETEX", bucket, "EX", TTL, "FIELDS", 1, field)

        return {
            "load: HGET": each(lambda key: ("HGET", *self.place(key)), sample),
            "save: HSETEX FXX": each(lambda key: self.hsetex(key, 1, "FXX"), sample),
            "create: HSETEX FNX": each(lambda key: self.hsetex(key, 2, "FNX"), lambda n: take(new, n)),
            "delete: HDEL": each(lambda key: ("HDEL", *self.place(key)), lambda n: take(doomed, n)),
            "load+slide: HGETEX EX": each(hgetex, sample),
        }


def measure(control: redis.Redis, probe: Probe, ops: int) -> tuple[float, float, Stats]:
    """(Redis µs per operation over the commands the client sent, client CPU µs per operation,
    their stats and the inner calls')."""
    batch = probe(ops)
    control.config_resetstat()
    with sent_by_every_connection() as sent:
        started = time.process_time()
        batch()
        client = (time.process_time() - started) * 1e6 / ops
    stats = {name.removeprefix("cmdstat_"): s for name, s in control.info("commandstats").items()}
    stats = {name: s for name, s in stats.items() if not name.startswith(("config", "info", "client", "select"))}
    total = sum(s["usec"] for name, s in stats.items() if name in sent.commands) / ops
    named = {name if name in sent.commands else f"({name})": s for name, s in stats.items()}
    return total, client, {name: (s["calls"] / ops, s["usec"] / s["calls"]) for name, s in named.items()}


def cpu_table(control: redis.Redis, probes: dict[tuple[str, str], Probe], ops: int, rounds: int) -> None:
    rng = random.Random(11)
    for probe in probes.values():  # connections open, scripts loaded
        measure(control, probe, WARMUP)
    sums: dict[tuple[str, str], list[float]] = {name: [] for name in probes}
    clients: dict[tuple[str, str], list[float]] = {name: [] for name in probes}
    stats: dict[tuple[str, str], list[Stats]] = {name: [] for name in probes}
    for number in range(rounds):
        for name in rng.sample(list(probes), len(probes)):
            total, client, detail = measure(control, probes[name], ops)
            sums[name].append(total)
            clients[name].append(client)
            stats[name].append(detail)
        progress(f"Redis CPU round {number + 1}/{rounds}")
    print(f"\n1. Redis CPU per operation: INFO commandstats, {ops} operations per batch, median of {rounds} rounds\n")
    print("  (client µs: the benchmark process's CPU per operation, Django's SessionStore included)")
    print(
        f"  {'row':<34} {'operation':<22} {'sum µs':>7} {'min-max':>11} {'client µs':>9}  commands: calls/op x µs/call"
    )
    for (row, operation), figures in sums.items():
        readings = stats[(row, operation)]
        names = sorted({n for r in readings for n in r}, key=lambda n: (n.startswith("("), n))
        detail = " ".join(
            f"{n.rstrip(')')} {statistics.median(r[n][0] for r in readings if n in r):.2f}"
            f"x{statistics.median(r[n][1] for r in readings if n in r):.2f}{')' * n.endswith(')')}"
            for n in names
        )
        spread = f"{min(figures):.2f}-{max(figures):.2f}"
        client = statistics.median(clients[(row, operation)])
        print(f"  {row:<34} {operation:<22} {statistics.median(figures):>7.2f} {spread:>11} {client:>9.1f}  {detail}")


def used_memory(control: redis.Redis) -> int:
    time.sleep(0.5)  # let the server settle (client buffers, cron)
    return int(control.info("memory")["used_memory"])


def encodings(on: redis.Redis, buckets: list[bytes]) -> str:
    pipe = on.pipeline(transaction=False)
    for bucket in buckets:
        pipe.object("encoding", bucket)
    found = Counter(e.decode() if isinstance(e, bytes) else str(e) for e in pipe.execute())
    return ", ".join(f"{name} {count}" for name, count in found.most_common())


Writer = tuple[str, redis.Redis, Callable[[int], list[str]]]  # row, its DB, what writes N sessions (their keys)


def writers(port: int, raw: Raw, engines: list[Engine], field_ttls: bool) -> list[Writer]:
    def written(commands: Callable[[str, int], list[tuple[Any, ...]]]) -> Callable[[int], list[str]]:
        def write(n: int) -> list[str]:
            keys = take(session_keys(1), n)
            raw.fill(keys, commands)
            return keys

        return write

    def hsetex(expiry: bool) -> Callable[[str, int], list[tuple[Any, ...]]]:
        return lambda key, i: [raw.hsetex(key, i, "FNX", expiry)]

    rows: list[Writer] = [("today's layout: HSET, EXPIRE", raw.on, written(raw.today))]
    if field_ttls:
        rows += [("field TTLs: HSETEX FNX EX", raw.on, written(hsetex(False)))]
        rows += [("field TTLs, value with expiry", raw.on, written(hsetex(True)))]
    return rows + [(f"{e.name} (SessionStore)", redis.Redis(port=port, db=e.db), e.fill) for e in engines]


def memory_table(port: int, layout: Any, engines: list[Engine], sizes: list[int], field_ttls: bool) -> None:
    control, raw = redis.Redis(port=port), Raw(redis.Redis(port=port, db=RAW_DB), layout)
    rows = []
    for n in sizes:
        for row, on, write in writers(port, raw, engines, field_ttls):
            progress(f"memory: {row}, {n:,} sessions")
            control.flushall()
            before, started = used_memory(control), time.monotonic()
            keys = write(n)
            per, seconds = (used_memory(control) - before) / n, time.monotonic() - started
            buckets = sorted({raw.place(key)[0] for key in random.Random(5).sample(keys, min(n, 256))})
            if (stored := sum(on.hlen(bucket) for bucket in buckets)) < len(buckets):
                sys.exit(f"{row}: {stored} fields in the {len(buckets)} buckets of the sessions sampled")
            rows.append((row, f"{n:,}", f"{per:.1f}", f"{seconds:.0f}", encodings(on, buckets)))
    print("\n2. Bytes per session: INFO used_memory delta / sessions\n")
    print(f"  {'row':<36} {'sessions':>10} {'B/session':>10} {'fill s':>7}  encodings of the buckets sampled")
    for row, *figures in rows:
        print(f"  {row:<36} {figures[0]:>10} {figures[1]:>10} {figures[2]:>7}  {figures[3]}")


def configure(url: str, compare: str | None) -> list[Engine]:
    def alias(db: int, package: str, use_hash: bool, **extra: Any) -> dict[str, Any]:
        options = {"USE_HASH": use_hash, "CLIENT_CLASS": f"{package}.client.SessionClient", **extra}
        if use_hash:
            options["BUCKETS"] = BUCKETS
        return {"BACKEND": f"{package}.cache.RedisCache", "LOCATION": f"{url}/{db}", "OPTIONS": options}

    # The hash mode of this checkout twice: as it chooses (field TTLs on Redis 8), and with its script.
    rows: list[tuple[str, str, bool, dict[str, Any]]] = [
        ("hash mode", "cache_sessions", True, {}),
        ("hash mode, FIELD_TTL=False", "cache_sessions", True, {"FIELD_TTL": False}),
        ("string mode", "cache_sessions", False, {}),
    ]
    if compare:
        rows += [
            (f"at {compare}, {mode}", package_name(compare), use_hash, {})
            for mode, _, use_hash, extra in list(rows)
            if not extra
        ]
    caches = {"layout": alias(RAW_DB, "cache_sessions", True, FIELD_TTL=False)}
    caches |= {
        f"row{db}": alias(db, package, use_hash, **extra) for db, (_, package, use_hash, extra) in enumerate(rows, 1)
    }
    settings.configure(SECRET_KEY="field-ttl-benchmark", USE_TZ=True, INSTALLED_APPS=[], CACHES=caches)
    django.setup()
    return [
        Engine(name, f"row{db}", db, import_string(f"{package}.backend.SessionStore"))
        for db, (name, package, _, _) in enumerate(rows, 1)
    ]


def has_field_ttls(control: redis.Redis) -> bool:
    """Whether the server has HSETEX (asked by trying it: COMMAND INFO differs between versions)."""
    try:
        control.execute_command("HSETEX", "field-ttl-probe", "EX", 1, "FIELDS", 1, "f", "v")
    except redis.ResponseError:
        return False
    control.delete("field-ttl-probe")
    return True


def progress(message: str) -> None:
    print(f"  {message}...", file=sys.stderr, flush=True)


def run(server: RedisServer, args: argparse.Namespace, dataset: int, sizes: list[int], ops: int, rounds: int) -> None:
    from cache_sessions.storage.registry import sessions_for  # after settings.configure()

    engines = configure(server.url, args.compare)
    control = redis.Redis(port=server.port)
    field_ttls = has_field_ttls(control)
    layout = sessions_for("layout")
    info = control.info("server")
    print(f"field_ttl benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"{server} ({server.binary}); config {', '.join(f'{k} {v}' for k, v in RECOMMENDED.items())}")
    print(f"Redis version {info['redis_version']}; HSETEX: {'yes' if field_ttls else 'no: field-TTL rows left out'}")
    print(f"Python {platform.python_version()}, redis-py {redis.__version__}, {os.cpu_count()} CPUs")
    print(f"load average {os.getloadavg()}")
    sizes_text = f"{len(encoded(layout, 0, False))} B without its expiry, {len(encoded(layout, 0, True))} B with it"
    print(f"Logged-in session: 4 entries, its value {sizes_text}; {BUCKETS:,} buckets; TTL {TTL:,} s")
    reserved = ops * rounds + WARMUP  # the sessions the delete probes delete
    rng, probes = random.Random(3), {}
    for engine in engines:
        progress(f"{engine.name}: {dataset:,} sessions through SessionStore")
        keys = engine.fill(dataset)
        live, doomed = keys[:-reserved], iter(keys[-reserved:])
        probes |= {(engine.name, op): p for op, p in engine.probes(live, doomed, rng).items()}
    if field_ttls:
        raw, keys = Raw(redis.Redis(port=server.port, db=RAW_DB), layout), take(session_keys(1), dataset)
        progress(f"field TTLs: {dataset:,} sessions")
        raw.fill(keys, lambda k, i: [raw.hsetex(k, i, "FNX")])
        field_probes = raw.probes(keys[:-reserved], iter(keys[-reserved:]), session_keys(2), rng)
        probes |= {("no Lua: field TTLs", op): p for op, p in field_probes.items()}
    cpu_table(control, probes, ops, rounds)
    print(f"  ({dataset:,} sessions per row; load {os.getloadavg()})")
    memory_table(server.port, layout, [e for e in engines if "hash" in e.name], sizes, field_ttls)
    print(f"\nload {os.getloadavg()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=int, help="sessions per row for the Redis CPU table (default 200000)")
    parser.add_argument("--sessions", type=lambda t: [int(n) for n in t.split(",")], help="default 200000,1000000")
    parser.add_argument("--ops", type=int, help="operations per batch (default 2000)")
    parser.add_argument("--rounds", type=int, help="default 5")
    parser.add_argument("--compare", metavar="REV", help="add rows for cache_sessions at git revision REV")
    parser.add_argument("--quick", action="store_true", help="20,000 sessions, 300 operations, 3 rounds")
    args = parser.parse_args(argv)
    dataset = args.dataset or (20_000 if args.quick else 200_000)
    sizes = args.sessions or ([20_000] if args.quick else [200_000, 1_000_000])
    ops, rounds = args.ops or (300 if args.quick else 2000), args.rounds or (3 if args.quick else 5)
    exported = export_revision(args.compare) if args.compare else None
    server = RedisServer(config=RECOMMENDED).start()
    try:
        run(server, args, dataset, sizes, ops, rounds)
    finally:
        server.stop()
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)


if __name__ == "__main__":
    main()
