"""Indexing the sessions that exist already: ``manage.py usersessions --backfill``.

A session gets its index record (``index.py``) when it is created, when it is
moved from ``MIGRATE_FROM``, and on the first request that uses it after
``USER_SESSIONS`` was turned on. A session made before the option (or while it was
off) that nobody uses meanwhile is in no index, so ``revoke_all_sessions`` cannot end
it. The backfill walks every stored session (SCAN of each server ``servers()`` gives:
every primary of a cluster, every shard of a partitioned alias) and writes a record
for each logged-in session that its user's index lacks.

Bounded: each round trip carries at most about ``batch`` items: a SCAN page of keys
or buckets, an HSCAN page of one bucket, the values of a page (one pipeline), the
runs of their users (one pipeline per server), their records (likewise); a bucket in
the compact encoding is read whole (it is small by construction).

Resumable: the cursor (``<server>:<SCAN cursor>``) reported after each SCAN page is
where a run given it goes on. A page done twice costs time, not correctness: a
session whose user's index has a record for it is not written again. The order of
``servers()`` must be the same (no failover, no change of LOCATION in between),
else start again from ``0:0``.

A record written here knows the session's place, not its key: its id is the place's
(``index.place_id``); listings show it without metadata, it is filed as the
user's least recently active, and the session's own record replaces it the next
time the session is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..errors import CorruptSession
from ..format.codec import is_overflow_pointer, read_header
from ..topology import server_facts
from . import index
from .base import Storage
from .bucket_names import USER_BUCKET_NAME
from .buckets import HashStorage
from .calls import drive
from .sweep import _glob_escape, bucket_pattern, is_bucket_name


@dataclass
class BackfillReport:
    names: int = 0  # session keys, or bucket fields, looked at
    logged_in: int = 0  # live sessions with a user
    indexed: int = 0  # records written
    ended: int = 0  # sessions ended by USER_SESSIONS_MAX (a user with more sessions than it)
    cursor: str = "0:0"
    finished: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Found:
    """A logged-in session, as the walk finds it (never its key)."""

    place: tuple[bytes, ...]
    user: str
    expires_at: int


def parse_cursor(cursor: str) -> tuple[int, int]:
    server, _, scan = cursor.partition(":")
    if not (server.isdigit() and scan.isdigit()):
        raise ValueError(f"a backfill cursor is <server>:<SCAN cursor>, e.g. 0:0, not {cursor!r}")
    return int(server), int(scan)


def backfill(
    sessions: Storage,
    *,
    cursor: str = "0:0",
    batch: int = 100,
    max_seconds: float | None = None,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Index the logged-in sessions that have no record, from ``cursor`` on."""
    report = BackfillReport(cursor=cursor)
    started = time.monotonic()
    server, scan = parse_cursor(cursor)
    servers = sessions.servers()
    while server < len(servers):
        redis: Any = servers[server]  # (redis-py's reply types are loose)
        with errors.translated():
            scan, names = redis.scan(scan, match=_pattern(sessions), count=batch, _type=_kind(sessions))
            accepted: list[bytes] = [name for name in names if _accepts(sessions, name)]
            for found in _pages(sessions, redis, accepted, batch, report):
                _index(sessions, found, report)
        if int(scan) == 0:
            server, scan = server + 1, 0
        report.cursor = f"{server}:{int(scan)}"
        if progress is not None:
            progress(report)
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
    report.finished = server >= len(servers)
    report.seconds = time.monotonic() - started
    return report


def _pattern(sessions: Storage) -> bytes:
    return bucket_pattern(sessions) if isinstance(sessions, HashStorage) else _glob_escape(sessions.prefix) + b"*"


def _kind(sessions: Storage) -> str:
    return "hash" if isinstance(sessions, HashStorage) else "string"


def _accepts(sessions: Storage, name: bytes) -> bool:
    """Whether a name SCAN found holds sessions (not the index's own overflow keys)."""
    if isinstance(sessions, HashStorage):
        return is_bucket_name(sessions, name)
    rest = name[len(sessions.prefix) :]
    head, colon, _ = rest.partition(b":")
    return not (colon and USER_BUCKET_NAME.fullmatch(head))


def _pages(
    sessions: Storage, redis: Any, names: list[bytes], batch: int, report: BackfillReport
) -> Iterable[list[Found]]:
    """The logged-in sessions under ``names``, a page at a time."""
    if not isinstance(sessions, HashStorage):
        report.names += len(names)
        yield _logged_in(sessions, _string_values(redis, names), report)
        return
    for bucket in names:
        cursor = 0
        while True:
            cursor, fields = redis.hscan(bucket, cursor, count=batch)
            report.names += len(fields)
            yield _logged_in(sessions, _bucket_values(sessions, redis, bucket, fields), report)
            if int(cursor) == 0:
                break


def _string_values(redis: Any, names: list[bytes]) -> list[tuple[tuple[bytes, ...], bytes, int]]:
    """``(place, value, expires_at)`` of string-mode sessions (one pipeline)."""
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.get(name)
        pipe.pttl(name)
    replies = pipe.execute() if names else []
    now = time.time()
    return [
        ((name,), value, int(now + pttl / 1000))
        for name, value, pttl in zip(names, replies[::2], replies[1::2], strict=True)
        if value is not None and pttl > 0
    ]


def _bucket_values(
    sessions: HashStorage, redis: Any, bucket: bytes, fields: dict[bytes, bytes]
) -> list[tuple[tuple[bytes, ...], bytes, int]]:
    """``(place, value, expires_at)`` of a page of a bucket (overflow keys, and the TTLs of
    fields written with one, read in one pipeline)."""
    pointers = [field for field, value in fields.items() if is_overflow_pointer(value)]
    expiries: dict[bytes, int | None] = {}
    for field, value in fields.items():
        try:
            expiries[field] = read_header(value)[2]
        except CorruptSession:
            continue
    # Values without an expiry of their own: written with field TTLs (where the server has them).
    timed = (
        [field for field, expiry in expiries.items() if expiry is None] if server_facts.software(redis).hsetex else []
    )
    pipe = redis.pipeline(transaction=False)
    for field in pointers:
        pipe.get(bucket + b":" + field)
    if timed:
        pipe.execute_command("HEXPIRETIME", bucket, "FIELDS", len(timed), *timed)
    replies = pipe.execute() if pointers or timed else []
    overflowed = dict(zip(pointers, replies[: len(pointers)], strict=True))
    if timed:
        expiries |= {field: at if at > 0 else None for field, at in zip(timed, replies[-1], strict=True)}
    found: list[tuple[tuple[bytes, ...], bytes, int]] = []
    for field, expires_at in expiries.items():
        value = fields[field]
        stored = overflowed.get(field, value)
        if stored and expires_at:
            found.append(((bucket, field), stored, expires_at))
    return found


def _logged_in(
    sessions: Storage, values: list[tuple[tuple[bytes, ...], bytes, int]], report: BackfillReport
) -> list[Found]:
    found = []
    for place, value, expires_at in values:
        session = sessions.decode(value)  # None: expired, or unreadable
        user = session.get(index.USER_KEY) if session else None
        if user and expires_at > time.time():
            found.append(Found(place, str(user), expires_at))
    report.logged_in += len(found)
    return found


def _index(sessions: Storage, found: list[Found], report: BackfillReport) -> None:
    """Write the records the users' indexes lack (their runs read first, one pipeline per server)."""
    users = sorted({session.user for session in found})
    entries = [index.IndexEntry.of(sessions, user) for user in users]
    runs = sessions.execute_many([entry.read_call() for entry in entries])
    listed = {
        (user, tuple(payload[0]))
        for user, run in zip(users, runs, strict=True)
        for payload in index.records(run, time.time()).values()
    }
    every = sessions.options.user_session_seen_every
    writes = [
        index.Write(session.user, _record(session, every), index.place_id(session.place), oldest=True)
        for session in found
        if (session.user, session.place) not in listed
    ]
    report.ended += drive(index.writing(sessions, writes), sessions.execute_many)
    report.indexed += len(writes)


def _record(session: Found, every: int) -> bytes:
    place_id = index.place_id(session.place)
    return index.record(place_id, session.expires_at + every, [list(session.place)])
