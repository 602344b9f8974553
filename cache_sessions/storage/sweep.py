"""Removing expired sessions from hash buckets, and measuring the buckets.

Used by ``manage.py cleanuprs``, ``clearsessions`` and ``SessionStore.clear_expired``.
Each Redis call does bounded work (one ``HSCAN`` page of one bucket, judged
and cleaned inside one script), so a sweep never holds the server for long;
the report says how long the longest call took.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from .. import errors
from ..topology.async_clients import NotNative
from . import index, index_lua, lua
from .base import Storage
from .bucket_names import BUCKET_GLOB, BUCKET_NAME, USER_BUCKET_GLOB, USER_BUCKET_NAME, bucket_name
from .buckets import HashStorage
from .calls import Call, adrive, drive, evalsha

if TYPE_CHECKING:
    from redis import Redis

SCAN_COUNT = 1000


def clear_expired(sessions: Storage) -> None:
    """Sweep every bucket (``SessionStore.clear_expired``, ``manage.py clearsessions``; see
    ``cleanuprs`` for options). String mode has only the user index's buckets to sweep:
    Redis expires string keys itself."""
    with errors.translated():
        sweep(sessions, all_buckets(sessions))


async def aclear_expired(sessions: Storage) -> None:
    """``clear_expired`` on ``redis.asyncio`` (in a thread where the topology has no asyncio twin)."""
    try:
        with errors.translated():
            await asweep_all(sessions)
    except NotNative:
        await sync_to_async(clear_expired)(sessions)


def _glob_escape(raw: bytes) -> bytes:
    return bytes(b for c in raw for b in ((92, c) if c in b"*?[]\\" else (c,)))


def bucket_pattern(sessions: HashStorage) -> bytes:
    return _glob_escape(sessions.prefix) + (BUCKET_GLOB if sessions.default_buckets() else b"*")


def all_buckets(sessions: Storage, servers: Iterable[Redis] | None = None) -> Iterator[bytes]:
    """Every bucket to sweep (the sessions' in hash mode, the user index's with
    USER_SESSIONS), found with SCAN (never KEYS), on every server (or on ``servers``)."""
    for pattern, accept in sweep_targets(sessions):
        for redis in sessions.servers() if servers is None else servers:
            for key in redis.scan_iter(match=pattern, count=SCAN_COUNT, _type="hash"):
                if accept(key):
                    yield key


def session_buckets(sessions: HashStorage, servers: Iterable[Redis] | None = None) -> Iterator[bytes]:
    """Every session bucket (``cleanuprs --stats``), on every server (or on ``servers``)."""
    return (key for key in all_buckets(sessions, servers) if is_bucket_name(sessions, key))


def sweep_targets(sessions: Storage) -> list[tuple[bytes, Callable[[bytes], bool]]]:
    """``(SCAN MATCH pattern, which keys found are buckets)`` for each kind of bucket."""
    targets: list[tuple[bytes, Callable[[bytes], bool]]] = []
    if isinstance(sessions, HashStorage):
        targets.append((bucket_pattern(sessions), lambda key: is_bucket_name(sessions, key)))
    if sessions.options.user_sessions:
        pattern = _glob_escape(sessions.prefix) + USER_BUCKET_GLOB
        targets.append((pattern, lambda key: is_user_bucket(sessions, key)))
    return targets


def is_bucket_name(sessions: HashStorage, key: bytes) -> bool:
    """Whether ``key`` can be a session bucket of ``sessions``: inside its namespace, and with
    the default names, exactly ``h{<hex>}`` (not an overflow key, not a user bucket, nothing else)."""
    if not key.startswith(sessions.prefix) or is_user_bucket(sessions, key):
        return False
    if sessions.default_buckets():
        return BUCKET_NAME.fullmatch(key, len(sessions.prefix)) is not None
    return True


def is_user_bucket(sessions: Storage, key: bytes) -> bool:
    return key.startswith(sessions.prefix) and USER_BUCKET_NAME.fullmatch(key, len(sessions.prefix)) is not None


def sample_buckets(sessions: Storage, size: int) -> list[bytes]:
    """``size`` random session buckets (hash mode) and, with USER_SESSIONS, user buckets."""
    chosen = _sample_session_buckets(sessions, size) if isinstance(sessions, HashStorage) else []
    if sessions.options.user_sessions:
        numbers = random.sample(range(sessions.options.buckets), min(size, sessions.options.buckets))
        chosen += [sessions.prefix + bucket_name(number, b"u") for number in numbers]
    return chosen


def _sample_session_buckets(sessions: HashStorage, size: int) -> list[bytes]:
    """``HASH_KEYS_CHECK_FOR_EXPIRY(redis)`` if set, else ``size`` random buckets.

    Whatever the chooser returns, only names that can be buckets of these
    sessions are kept (each once): a sweep never touches other data, e.g. the
    hashes a chooser built on RANDOMKEY finds elsewhere in the database.
    """
    chooser = sessions.options.hash_keys_check_for_expiry
    if chooser is not None:  # asked once per server, like django-redisession's f(redis)
        chosen = (
            key.encode() if isinstance(key, str) else key for redis in sessions.servers() for key in chooser(redis)
        )
        return list(dict.fromkeys(key for key in chosen if isinstance(key, bytes) and is_bucket_name(sessions, key)))
    if sessions.default_buckets():
        numbers = random.sample(range(sessions.buckets), min(size, sessions.buckets))
        return [sessions.prefix + bucket_name(number) for number in numbers]
    found: list[bytes] = []
    servers = sessions.servers()
    for redis in servers:  # RANDOMKEY per server, in a pipeline of that server's own
        pipe = redis.pipeline(transaction=False)
        for _ in range(-(-size // len(servers))):
            pipe.randomkey()
        found += [key for key in pipe.execute() if key and is_bucket_name(sessions, key)]
    return list(dict.fromkeys(found))


@dataclass
class SweepReport:
    buckets: int = 0
    fields: int = 0
    expired: int = 0
    calls: int = 0
    seconds: float = 0.0
    longest_call: float = 0.0
    finished: bool = True

    def add(self, other: SweepReport) -> None:
        """Count ``other`` (another server's sweep) in this one."""
        self.buckets += other.buckets
        self.fields += other.fields
        self.expired += other.expired
        self.calls += other.calls
        self.seconds += other.seconds
        self.longest_call = max(self.longest_call, other.longest_call)
        self.finished = self.finished and other.finished


def sweep(
    sessions: Storage,
    buckets: Iterable[bytes],
    *,
    batch_size: int = 500,
    max_seconds: float | None = None,
    dry_run: bool = False,
    progress: Callable[[SweepReport], None] | None = None,
) -> SweepReport:
    """Remove (or, with ``dry_run``, count) expired fields of ``buckets``.

    Race-free: the expiry is compared inside the script that deletes, so a
    session refreshed after the scan saw it survives.
    """
    report = SweepReport()
    started = time.monotonic()
    for bucket in buckets:
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            report.finished = False
            break
        if drive(bucket_sweep(sessions, bucket, batch_size, dry_run, report), sessions.execute):
            report.buckets += 1
            if progress is not None:
                progress(report)
    report.seconds = time.monotonic() - started
    return report


async def asweep_all(sessions: Storage, batch_size: int = 500) -> SweepReport:
    """``sweep(sessions, all_buckets(sessions))`` on ``redis.asyncio`` (``aclear_expired``)."""
    report = SweepReport()
    started = time.monotonic()
    await sessions.aprepare()  # the user buckets' limit (index_limit), learnt on the loop
    servers = await sessions.topology.aservers()
    for pattern, accept in sweep_targets(sessions):
        for server in servers:
            async for bucket in server.scan_iter(match=pattern, count=SCAN_COUNT, _type="hash"):
                steps = bucket_sweep(sessions, bucket, batch_size, False, report)
                if accept(bucket) and await adrive(steps, sessions.aexecute):
                    report.buckets += 1
    report.seconds = time.monotonic() - started
    return report


Steps = Generator[Call[Any], Any, bool]  # driven by calls.drive / calls.adrive


def bucket_sweep(sessions: Storage, bucket: bytes, batch_size: int, dry_run: bool, report: SweepReport) -> Steps:
    """The calls that page through one bucket (a driver sends each reply back in), adding
    to ``report``; returns False if the key is not a bucket. Written once for both executors.
    A user bucket's page counts records, not fields."""
    cursor: bytes | int = 0
    user_bucket = is_user_bucket(sessions, bucket)
    limit = index.index_limit(sessions) if user_bucket else 0
    while True:
        call_started = time.monotonic()
        if user_bucket:
            args = [cursor, batch_size, int(time.time()), limit, index.POINTER_BYTE, int(dry_run)]
            call = evalsha(index_lua.INDEX_SWEEP, [bucket], args, list)
        else:
            call = evalsha(lua.SWEEP, [bucket], [cursor, batch_size, int(dry_run)], list)
        cursor, seen, expired = yield call
        if seen < 0:
            return False  # not a hash: not a bucket
        report.longest_call = max(report.longest_call, time.monotonic() - call_started)
        report.calls += 1
        report.fields += seen
        report.expired += expired
        if int(cursor) == 0:
            return True


@dataclass
class BucketStats:
    buckets: int = 0
    fields: int = 0
    max_fields: int = 0
    bucket_bytes: int = 0
    overflow_keys: int = 0
    overflow_bytes: int = 0
    encodings: Counter[str] = field(default_factory=Counter)

    @property
    def bytes_per_session(self) -> float:
        return (self.bucket_bytes + self.overflow_bytes) / self.fields if self.fields else 0.0

    def add(self, other: BucketStats) -> None:
        """Count ``other`` (another server's buckets) in these."""
        self.buckets += other.buckets
        self.fields += other.fields
        self.max_fields = max(self.max_fields, other.max_fields)
        self.bucket_bytes += other.bucket_bytes
        self.overflow_keys += other.overflow_keys
        self.overflow_bytes += other.overflow_bytes
        self.encodings.update(other.encodings)


def bucket_stats(
    sessions: HashStorage, buckets: Iterable[bytes], batch: int = 500, server: Redis | None = None
) -> BucketStats:
    """Fields, encodings and memory (MEMORY USAGE) of ``buckets`` and their overflow keys
    (on ``server`` alone, where the buckets were found, when it is given)."""
    stats = BucketStats()
    chunk: list[bytes] = []

    def measure() -> None:
        for redis, names in sessions.by_server(chunk) if server is None else [(server, chunk)]:
            pipe = redis.pipeline(transaction=False)
            for key in names:
                pipe.hlen(key)
                pipe.object("encoding", key)
                pipe.memory_usage(key, samples=0)
            results = pipe.execute()
            for start in range(0, len(results), 3):
                fields, encoding, size = results[start : start + 3]
                stats.buckets += 1
                stats.fields += fields
                stats.max_fields = max(stats.max_fields, fields)
                stats.encodings[encoding.decode() if isinstance(encoding, bytes) else str(encoding)] += 1
                stats.bucket_bytes += size or 0
        chunk.clear()

    for key in buckets:
        chunk.append(key)
        if len(chunk) >= batch:
            measure()
    if chunk:
        measure()
    pattern = bucket_pattern(sessions) + b":*"
    for redis in sessions.servers() if server is None else [server]:
        pipe = redis.pipeline(transaction=False)
        for key in redis.scan_iter(match=pattern, count=SCAN_COUNT, _type="string"):
            stats.overflow_keys += 1
            pipe.memory_usage(key, samples=0)
            if len(pipe) >= batch:
                stats.overflow_bytes += sum(size or 0 for size in pipe.execute())
        stats.overflow_bytes += sum(size or 0 for size in pipe.execute())
    return stats
