"""The bulk copy of ``manage.py migratesessions``: every live session of an old store
(a ``Source`` that can walk what it holds) moved into ours, a batch at a time.

The same move as the read-through (``fallback.py``): a session found alive is
created in ours with its remaining life through the storage's atomic,
idempotent create (a session already in ours, which is newer, is never
overwritten), then deleted from the old store; an expired one is left where it
is.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..errors import UnencodableSession
from ..storage import index
from ..storage.base import Storage
from ..storage.calls import Call, drive
from .base import Entry, Source, Unreadable, old_store, remaining


@dataclass
class CopyReport:
    seen: int = 0
    copied: int = 0
    existing: int = 0  # already in ours (newer): not overwritten
    expired: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> sessions
    seconds: float = 0.0
    finished: bool = True

    @property
    def rate(self) -> float:
        return self.seen / self.seconds if self.seconds else 0.0


def copy_all(
    source: Source,
    sessions: Storage,
    *,
    batch_size: int = 500,
    max_seconds: float | None = None,
    dry_run: bool = False,
    progress: Callable[[CopyReport], None] | None = None,
) -> CopyReport:
    """Move every live session of ``source`` into ``sessions`` (``BulkUnsupported`` if it cannot list them).

    Resumable: what a batch moved is deleted from the old store before the next
    batch, so a run interrupted (or stopped by ``max_seconds``) and started again
    goes on with what is left; a session copied but not yet deleted is found in
    ours the second time and not overwritten.
    """
    report = CopyReport()
    started = time.monotonic()
    with old_store(source):
        batches = source.walk(batch_size)
        for batch in batches:
            moved = _copy_batch(batch, sessions, report, dry_run)
            if moved and not dry_run:
                source.delete_many(moved)
            if progress is not None:
                progress(report)
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                report.finished = False
                break
    report.seconds = time.monotonic() - started
    return report


def _copy_batch(batch: list[Entry], sessions: Storage, report: CopyReport, dry_run: bool) -> list[str]:
    """Create the live sessions of a batch in ours; the keys whose old copy should go (copied, or
    ours already has a newer one)."""
    keys, calls, live = [], [], []
    for entry in batch:
        if entry.found is None and entry.error is None:
            continue  # gone meanwhile (expired, moved by a request), or a name SCAN returned twice
        report.seen += 1
        if entry.error is not None:
            report.failed[entry.error] += 1
            continue
        assert entry.found is not None
        try:
            ttl = remaining(entry.found)
        except Unreadable as exc:
            report.failed[str(exc)] += 1
            continue
        if ttl <= 0 or not entry.found.data:
            report.expired += 1
            continue
        if dry_run:
            report.copied += 1
            continue
        live.append((entry.key, entry.found.data, ttl))
    # Their records first (one pipeline per server), each session then created with its mark.
    drive(index.writing(sessions, index.moved_records(sessions, live)), sessions.execute_many)
    for key, data, ttl in live:
        try:
            calls.append(sessions.create_call(key, data, ttl))
        except UnencodableSession as exc:
            report.failed[_reason(exc)] += 1
            continue
        keys.append(key)
    moved = []
    for key, created in zip(keys, _pipelined(sessions, calls), strict=True):
        if created:
            report.copied += 1
        else:
            report.existing += 1
        moved.append(key)
    return moved


def _reason(exc: Exception) -> str:
    """A failure's reason without the session's own values: ``session['cart'] cannot be stored``."""
    text = str(exc)
    return text.split(":", 1)[0] if text.startswith("session[") else text


def _pipelined(sessions: Storage, calls: list[Call[bool]]) -> list[bool]:
    """Send ``calls`` in one pipeline per server: one round trip for a batch instead of one per session.

    The first call goes alone (it loads a script, learns the server's facts); a reply that is an
    error (NOSCRIPT after a restart, an old server's "syntax error") or asks for a follow-up is
    handed to ``sessions.execute``, which knows what to do with it.
    """
    if not calls:
        return []
    results: list[bool | None] = [sessions.execute(calls[0])] + [None] * (len(calls) - 1)
    groups: dict[int, tuple[Any, list[int]]] = {}
    for position in range(1, len(calls)):
        if calls[position].args is None or not sessions.topology.pipelines:  # (a cluster: one by one)
            results[position] = sessions.execute(calls[position])
            continue
        redis = sessions.redis_for(calls[position].route)
        groups.setdefault(id(redis), (redis, []))[1].append(position)
    for redis, positions in groups.values():
        pipe = redis.pipeline(transaction=False)
        for position in positions:
            args = calls[position].args
            assert args is not None
            pipe.execute_command(*args, **calls[position].options)
            for command in calls[position].more:  # a call of several commands (field TTLs)
                pipe.execute_command(*command)
        with errors.translated():
            replies = pipe.execute(raise_on_error=False)[::-1]
        for position in positions:
            call = calls[position]
            taken = [replies.pop() for _ in range(1 + len(call.more))]
            if any(isinstance(one, Exception) for one in taken):
                results[position] = sessions.execute(call)
                continue
            parsed = call.parse(taken if call.more else taken[0])
            results[position] = sessions.execute(parsed) if isinstance(parsed, Call) else parsed
    return [bool(result) for result in results]
