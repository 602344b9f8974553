"""Memory per session in Redis: ours against the alternatives (``make bench-memory``).

Starts its own redis-servers. Bulk data goes in through pipelines as the exact
bytes each engine would store; every table reads sessions back through the
engine's own ``SessionStore``, so it cannot silently measure something else.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import random
import secrets
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import django
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.core.cache import caches
from django.test import override_settings
from django.utils.crypto import get_random_string
from redis import Redis
from redis.client import Pipeline
from redis.cluster import RedisCluster

from cache_sessions.backend import SessionStore
from cache_sessions.storage import index as user_index
from cache_sessions.storage import lua
from cache_sessions.storage.bucket_names import bucket_name
from cache_sessions.storage.buckets import CREATE, UPSERT, HashStorage
from cache_sessions.storage.calls import pipelined as pipelined_call
from cache_sessions.storage.registry import sessions_for
from cache_sessions.storage.sweep import all_buckets, bucket_stats, sweep
from cache_sessions.testing import RedisServer
from cache_sessions.topology.server_facts import read_listpack_limits
from tests.support.clusters import Cluster
from tests.support.servers import RECOMMENDED  # README's hash-max-listpack-value 256 / -entries 512

TTL = 1_209_600  # two weeks: Django's SESSION_COOKIE_AGE
KEY_CHARS = string.ascii_lowercase + string.digits  # Django's session key alphabet
BATCH = 1000  # commands per pipeline round trip
GOALS = {"ours, hash mode": 120, "ours, string mode": 250}  # B/session at 1M sessions
Session = dict[str, Any]
Write = Callable[[Pipeline, str, Session], object]  # queues one session's write on a pipeline


@dataclass
class Pool:
    """Keys and logged-in payloads, made once (get_random_string is slow) and shared by every table."""

    keys: list[str]
    csrf: list[str]
    hashes: list[str]
    users: list[str]

    @classmethod
    def make(cls, n: int) -> Pool:
        progress(f"generating {n:,} session keys")
        keys, csrf = [get_random_string(32, KEY_CHARS) for _ in range(n)], [get_random_string(32) for _ in range(n)]
        return cls(
            keys, csrf, [secrets.token_hex(32) for _ in range(n)], [str(random.randint(1, 10**6)) for _ in range(n)]
        )

    def logged_in(self, i: int) -> Session:
        return {
            "_auth_user_id": self.users[i],
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": self.hashes[i],
            "_csrftoken": self.csrf[i],
        }


@dataclass
class Engine:
    label: str
    redis: Redis
    write: Write
    load: Callable[[str], Session]  # through the engine's own SessionStore
    sessions: HashStorage | None = None  # hash mode only
    route: Callable[[str], Redis] | None = None  # on a cluster: the node holding a session key's names


def queue_hash_write(sessions: HashStorage, pipe: Pipeline, key: str, session: Session, expires_at: int) -> None:
    """What ``HashStorage.write(key, session, ttl, UPSERT)`` sends, minus its random sweep."""
    ttl = expires_at - int(time.time())
    if ttl <= 0:  # an expired session, for the cleanup benchmark: the engine would not write it
        pipe.hset(*sessions.locate(key)[:2], sessions.codec.encode(session, expires_at=expires_at))
        return
    call = sessions.write_call(key, session, ttl, UPSERT, sweep=0)
    assert call.args is not None
    if not len(pipe):  # a pipeline cannot answer NOSCRIPT: each batch loads the script first
        pipe.execute_command("SCRIPT LOAD", lua.WRITE.source)
    pipe.execute_command(*call.args)


def ours(label: str, alias: str) -> Engine:
    sessions: Any = sessions_for(alias)
    hashed = sessions if isinstance(sessions, HashStorage) else None

    def write(pipe: Pipeline, key: str, session: Session) -> None:
        if hashed is not None:
            queue_hash_write(hashed, pipe, key, session, int(time.time()) + TTL)
        else:
            pipe.set(sessions.redis_key(key), sessions.codec.encode(session), ex=TTL)

    def load(key: str) -> Session:
        with override_settings(SESSION_CACHE_ALIAS=alias):
            return SessionStore(key).load()

    redis, route = sessions.redis(), None
    if isinstance(redis, RedisCluster):  # bulk writes go to each node in pipelines of its own

        def route(key: str) -> Redis:
            return redis.get_redis_connection(redis.get_node_from_key(sessions.locate(key)[0]))

    return Engine(label, redis, write, load, hashed, route)


def ours_with_user_index(label: str, alias: str, metadata: bool) -> Engine:
    """``ours`` plus USER_SESSIONS: each logged-in session also gets its index record, written
    as the engine writes it (user_index.stamp and IndexEntry.add_call). The pool's user ids are random in 1..10**6:
    about one session per user on average, some users with several (their runs of records
    then outgrow the bucket's compact limit sooner, the more so with metadata)."""
    base = ours(label, alias)
    sessions: Any = sessions_for(alias)
    meta = {"i": "203.0.113.7", "a": "Firefox on Linux"} if metadata else None

    def write(pipe: Pipeline, key: str, session: Session) -> None:
        session = dict(session)
        written = user_index.stamp(sessions, key, session, TTL, True, meta)  # also marks the session
        entry = user_index.IndexEntry.of(sessions, written.user)
        call = entry.add_call(written, user_index.index_limit(sessions), sessions.options.user_sessions_max)
        pipe.execute_command(*pipelined_call(call))
        base.write(pipe, key, session)

    def load(key: str) -> Session:
        loaded = base.load(key)
        loaded.pop(user_index.MARK, None)  # the mark the index adds, for the comparison with the pool's
        return loaded

    return dataclasses.replace(base, write=write, load=load)


def django_cache() -> Engine:
    client = caches["django"].client  # django-redis's DefaultClient: pickle, no compression

    def write(pipe: Pipeline, key: str, session: Session) -> None:
        pipe.set(client.make_key(CacheSessionStore.cache_key_prefix + key), client.encode(session), px=TTL * 1000)

    def load(key: str) -> Session:
        with override_settings(SESSION_CACHE_ALIAS="django"):
            return CacheSessionStore(key).load()

    return Engine("Django cache engine, django-redis", client.get_client(write=True), write, load)


def redis_sessions(redis: Redis) -> Engine:
    from redis_sessions.session import SessionStore as RedisSessionStore  # reads settings at import

    store = RedisSessionStore()

    def write(pipe: Pipeline, key: str, session: Session) -> None:  # its SETEX, spelled SET EX
        pipe.set(store.get_real_stored_key(key), store.encode(session), ex=TTL)

    return Engine("django-redis-sessions 0.6.2", redis, write, lambda key: RedisSessionStore(key).load())


def fill(
    redis: Redis,
    write: Write,
    keys: Sequence[str],
    session: Callable[[int], Session],
    route: Callable[[str], Redis] | None = None,
) -> float:
    """Write ``keys`` in pipelines of ``BATCH`` commands (on a cluster, one pipeline per node)."""
    started, pipes = time.monotonic(), {}
    for i, key in enumerate(keys):
        node = redis if route is None else route(key)
        pipe = pipes.get(id(node)) or pipes.setdefault(id(node), node.pipeline(transaction=False))
        write(pipe, key, session(i))
        if len(pipe) >= BATCH:
            pipe.execute()
    for pipe in pipes.values():
        pipe.execute()
    return time.monotonic() - started


def used_memory(redis: Redis, flush: bool = False) -> int:
    """INFO used_memory (on a cluster: summed over the primaries)."""
    if flush:
        redis.flushall()
    time.sleep(0.5)  # let the server settle (client buffers, cron)
    if isinstance(redis, RedisCluster):
        nodes = [redis.get_redis_connection(node) for node in redis.get_primaries()]
        return sum(int(node.info("memory")["used_memory"]) for node in nodes)
    return int(redis.info("memory")["used_memory"])


def check(engine: Engine, key: str, expected: Session | None) -> None:
    loaded = engine.load(key)
    if loaded != (expected or {}):
        sys.exit(f"{engine.label}: session {key} reads back as {loaded!r}, expected {expected!r}")


def pipelined(redis: Redis, command: str, keys: Iterable[bytes], *args: Any) -> list[Any]:
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        getattr(pipe, command)(*args, key)
    return pipe.execute()


def bucket_names(sessions: HashStorage) -> list[bytes]:
    return [sessions.prefix + bucket_name(number) for number in range(sessions.buckets)]


def counted(counter: Counter[Any]) -> str:
    names = {k: "missing" if k is None else k.decode() if isinstance(k, bytes) else k for k in counter}
    return ", ".join(f"{names[k]} {v:,}" for k, v in counter.most_common())


def progress(message: str) -> None:
    print(f"  {message}...", file=sys.stderr, flush=True)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(headers), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}\n")
    for n, row in enumerate(cells):
        line = "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print(line.rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def per_session(engines: list[Engine], pool: Pool, sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        for engine in engines:
            progress(f"{engine.label}: {n:,} sessions")
            before = used_memory(engine.redis, flush=True)
            seconds = fill(engine.redis, engine.write, pool.keys[:n], pool.logged_in, engine.route)
            per = (used_memory(engine.redis) - before) / n
            check(engine, pool.keys[n // 2], pool.logged_in(n // 2))
            keys = stored = engine.redis.dbsize()
            encodings = ""
            if engine.sessions is not None:
                buckets = bucket_names(engine.sessions)
                stored = sum(pipelined(engine.redis, "hlen", buckets))
                encodings = counted(Counter(pipelined(engine.redis, "object", random.sample(buckets, 256), "encoding")))
            if stored != n:
                sys.exit(f"{engine.label}: {stored:,} sessions stored, expected {n:,}")
            goal = GOALS.get(engine.label)
            verdict = "" if goal is None else f"<= {goal}" + ("" if n != 10**6 else " ok" if per <= goal else " MISSED")
            rows.append([engine.label, f"{n:,}", f"{keys:,}", f"{per:.1f}", verdict, f"{seconds:.0f}", encodings])
    headers = ["engine", "sessions", "Redis keys", "B/session", "goal at 1M", "insert s", "256 buckets sampled"]
    table("1. Logged-in session: bytes per session (INFO used_memory delta / sessions)", headers, rows)


def cart_item() -> dict[str, Any]:
    """~100 bytes of msgpack: random strings, which compress badly."""
    sku, name, note = secrets.token_hex(4), secrets.token_urlsafe(30), secrets.token_urlsafe(18)
    qty, price = random.randint(1, 9), f"{random.randint(100, 99_999) / 100:.2f}"
    return {"sku": sku, "name": name, "qty": qty, "price": price, "note": note}


def mix(engines: list[Engine], pool: Pool, n: int) -> None:
    kinds = [*[0] * 95, *[20] * 4, 200]  # cart items, per 100 sessions
    sessions = [pool.logged_in(i) for i in range(n)]
    for i, session in enumerate(sessions):
        if kinds[i % 100]:
            session["cart"] = [cart_item() for _ in range(kinds[i % 100])]
    assert engines[0].sessions is not None
    encode = engines[0].sessions.codec.encode  # for the title: value sizes (as string mode stores them)
    sizes = {k: [len(encode(s)) for s in sessions[kinds.index(k) :: 100][:100]] for k in (0, 20, 200)}
    rows = []
    for engine in engines:
        progress(f"mix, {engine.label}: {n:,} sessions")
        before = used_memory(engine.redis, flush=True)
        fill(engine.redis, engine.write, pool.keys[:n], sessions.__getitem__)
        per = (used_memory(engine.redis) - before) / n
        for i in (0, 95, 99):  # small, 2 KB, 20 KB
            check(engine, pool.keys[i], sessions[i])
        encodings = overflow = ""
        if engine.sessions is not None:
            stats = bucket_stats(engine.sessions, all_buckets(engine.sessions))
            encodings, overflow = f"{counted(stats.encodings)} (all)", f"{stats.overflow_keys:,}"
        rows.append([engine.label, f"{n:,}", f"{engine.redis.dbsize():,}", f"{per:.1f}", encodings, overflow])
    parts = [
        f"{kinds.count(k)}% {f'cart of {k}' if k else 'logged-in'} (~{sum(v) // len(v):,} B)" for k, v in sizes.items()
    ]
    headers = ["engine", "sessions", "Redis keys", "B/session", "bucket encodings", "overflow keys"]
    table(f"2. Mixed sizes, encoded: {', '.join(parts)}", headers, rows)


def calls(stats: dict[str, Any], *commands: str) -> int:
    return sum(int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands)


def steady(engine: Engine, pool: Pool, rounds: int, per_round: int) -> None:
    """Each round, the previous round's sessions expire and a new round is created through sessions.write()."""
    sessions, redis = engine.sessions, engine.redis
    assert sessions is not None
    used_memory(redis, flush=True)
    previous, rows = range(0), []
    for number in range(1, rounds + 1):
        progress(f"steady state, round {number}")
        started, past = time.monotonic(), int(time.time()) - 1

        def expire(pipe: Pipeline, key: str, session: Session, past: int = past) -> None:
            pipe.hset(*sessions.locate(key)[:2], sessions.codec.encode(session, expires_at=past))

        old = pool.keys[previous.start : previous.stop]
        fill(redis, expire, old, lambda j, at=previous.start: pool.logged_in(at + j))
        before, current = redis.info("commandstats"), range(previous.stop, previous.stop + per_round)
        for i in current:
            if not sessions.write(pool.keys[i], pool.logged_in(i), TTL, CREATE):
                sys.exit(f"steady state: session {pool.keys[i]} already existed")
        after, live = redis.info("commandstats"), len(current)
        fields = sum(pipelined(redis, "hlen", bucket_names(sessions)))
        sweeps = calls(after, "hrandfield", "hgetall") - calls(before, "hrandfield", "hgetall")
        row = [number, f"{live:,}", f"{fields:,}", f"{fields - live:,}", f"{fields / live:.2f}", f"{sweeps:,}"]
        memory, seconds = used_memory(redis) / 2**20, time.monotonic() - started
        rows.append([*row, f"{calls(after, 'hdel') - calls(before, 'hdel'):,}", f"{memory:.1f}", f"{seconds:.0f}"])
        previous = current
    check(engine, pool.keys[previous.start], pool.logged_in(previous.start))
    check(engine, pool.keys[previous.start - 1], None)
    headers = ["round", "live", "fields", "expired fields", "fields/live", "sweeps", "swept", "used_memory MiB"]
    title = f"3. Steady state, no cleanuprs: {engine.label}, {sessions.buckets:,} buckets, writes via sessions.write()"
    table(title, [*headers, "seconds"], rows)


def cleanup(engine: Engine, pool: Pool, n: int) -> None:
    sessions, redis = engine.sessions, engine.redis
    assert sessions is not None
    progress(f"cleanuprs: {n:,} sessions")
    used_memory(redis, flush=True)
    half, now = n // 2, int(time.time())
    for keys, expires_at, first in ((pool.keys[:half], now + TTL, 0), (pool.keys[half:n], now - 1, half)):

        def write(pipe: Pipeline, key: str, session: Session, expires_at: int = expires_at) -> None:
            queue_hash_write(sessions, pipe, key, session, expires_at)

        fill(redis, write, keys, lambda j, first=first: pool.logged_in(first + j))
    check(engine, pool.keys[half], None)
    redis.config_resetstat()
    report = sweep(sessions, all_buckets(sessions))
    evalsha = redis.info("commandstats")["cmdstat_evalsha"]
    left = sum(pipelined(redis, "hlen", bucket_names(sessions)))
    check(engine, pool.keys[0], pool.logged_in(0))
    if report.expired != n - half or left != half:
        sys.exit(f"cleanuprs removed {report.expired:,} and left {left:,}; expected {n - half:,} and {half:,}")
    row = [f"{report.seconds:.2f}", f"{report.buckets:,}", f"{report.fields:,}", f"{report.expired:,}", f"{left:,}"]
    mean, server = report.seconds / max(report.calls, 1) * 1000, float(evalsha["usec_per_call"])
    row += [f"{report.calls:,}", f"{report.longest_call * 1000:.2f}", f"{mean:.3f}", f"{server:.1f}"]
    headers = ["time s", "buckets", "fields seen", "expired removed", "left", "calls", "longest ms", "mean ms"]
    title = f"4. cleanuprs: sweep(all_buckets) of {n:,} sessions, half expired, {engine.label}"
    table(title, [*headers, "EVALSHA usec_per_call (server)"], [row])


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run(
    servers: list[RedisServer],
    cluster: Cluster,
    sizes: list[int],
    mix_n: int,
    rounds: int,
    per_round: int,
    sweep_n: int,
) -> None:
    ours_backend, url = "cache_sessions.cache.RedisCache", f"{servers[0].url}/0"
    on_cluster = {"CLIENT_CLASS": "cache_sessions.cluster.ClusterClient"}

    def alias(location: str | list[str] = url, **options: Any) -> dict[str, Any]:
        return {"BACKEND": ours_backend, "LOCATION": location, "OPTIONS": options}

    settings.configure(
        SECRET_KEY="memory-benchmark",
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "hash": alias(USE_HASH=True),
            "hash-users": alias(USE_HASH=True, USER_SESSIONS=True),
            "hash-users-meta": alias(USE_HASH=True, USER_SESSIONS=True, USER_SESSION_METADATA=True),
            "redis-defaults": alias(f"{servers[1].url}/0", USE_HASH=True),
            "string": alias(USE_HASH=False),
            "steady": alias(USE_HASH=True, BUCKETS=1024),
            "hash-cluster": alias(cluster.urls, USE_HASH=True, **on_cluster),
            "string-cluster": alias(cluster.urls, USE_HASH=False, **on_cluster),
            "django": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url},
        },
        SESSION_REDIS={"host": "127.0.0.1", "port": servers[0].port, "db": 0, "prefix": "session"},
    )
    django.setup()
    hash_mode, string_mode = ours("ours, hash mode", "hash"), ours("ours, string mode", "string")
    engines = [hash_mode, ours("ours, hash mode, Redis defaults 64/512", "redis-defaults"), string_mode]
    engines += [
        ours_with_user_index("ours, hash mode + USER_SESSIONS", "hash-users", metadata=False),
        ours_with_user_index("ours, hash mode + USER_SESSIONS + metadata", "hash-users-meta", metadata=True),
    ]
    engines += [django_cache(), redis_sessions(hash_mode.redis)]
    primaries = len(cluster.primaries)
    engines += [
        ours(f"ours, hash mode, Redis Cluster ({primaries} primaries)", "hash-cluster"),
        ours(f"ours, string mode, Redis Cluster ({primaries} primaries)", "string-cluster"),
    ]
    info = {**hash_mode.redis.info("server"), **hash_mode.redis.info("memory")}
    entries, value = read_listpack_limits(hash_mode.redis)  # Redis 6.2 calls them hash-max-ziplist-*
    config = f"hash-max-listpack-entries {entries}, hash-max-listpack-value {value}"
    libraries = ", ".join(f"{name} {version(name)}" for name in ("redis", "hiredis", "django-redis"))
    print(f"cache_sessions memory benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"Redis {info['redis_version']} ({servers[0].binary}, {info['mem_allocator']}), {config}")
    print(f"Redis Cluster rows: {len(cluster.primaries)} primaries of the same server and limits, no replicas")
    print(f"Django {django.get_version()}, {libraries}, Python {platform.python_version()}")
    print(f"Machine: {platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}")
    print(f"Logged-in session: 4 entries, TTL {TTL:,} s, 32-character [a-z0-9] keys from get_random_string")
    started = time.monotonic()
    pool = Pool.make(max(*sizes, mix_n, rounds * per_round, sweep_n))
    per_session(engines, pool, sizes)
    mix([hash_mode, string_mode], pool, mix_n)
    steady(ours("ours, hash mode", "steady"), pool, rounds, per_round)
    cleanup(hash_mode, pool, sweep_n)
    print(f"\nTotal {time.monotonic() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Memory per session in Redis: ours, Django's cache engine, ...")
    parser.add_argument("--sessions", type=lambda text: [int(n) for n in text.split(",")], help="e.g. 100000,1000000")
    parser.add_argument("--quick", action="store_true", help="smaller sizes everywhere (about a minute)")
    args = parser.parse_args(argv)
    sizes = args.sessions or ([10_000, 100_000] if args.quick else [100_000, 1_000_000])
    mix_n, per_round, sweep_n = (20_000, 10_000, 100_000) if args.quick else (100_000, 50_000, 1_000_000)
    servers = [RedisServer(config=RECOMMENDED), RedisServer()]  # the second keeps Redis's defaults
    cluster = Cluster(primaries=3)  # RECOMMENDED too
    try:
        for server in servers:
            server.start()
        cluster.start()
        run(servers, cluster, sizes, mix_n, 10, per_round, sweep_n)
    finally:
        cluster.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
