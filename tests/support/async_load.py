"""Async save loops for the failover tests: tasks of one event loop saving sessions again and
again (each save a +1), recording what was acknowledged (``asave`` returned), what failed and
how long saves took."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cache_sessions.backend import SessionStore
from tests.support.redis_stats import Sent, sent_by_clients


@dataclass
class AsyncLoad:
    """Tasks saving every session again and again (+1 each time), in one event loop."""

    keys: list[str]
    tasks: int = 20
    acked: dict[str, tuple[int, float]] = field(default_factory=dict)  # key: (value, when acknowledged)
    failures: list[tuple[float, float, BaseException]] = field(default_factory=list)
    slowest: float = 0.0
    slow: int = 0  # saves that took over a second
    last_ack: float = 0.0
    longest_gap: float = 0.0  # the longest time without an acknowledged save (errors and waits)

    async def write(self, keys: list[str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            for key in keys:
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    session = SessionStore(key)
                    value = await session.aget("n") + 1
                    await session.aset("n", value)
                    await session.asave()
                except Exception as exc:  # judged by the test
                    self.failures.append((started, time.monotonic(), exc))
                    await asyncio.sleep(0.005)
                    continue
                took = time.monotonic() - started
                self.acked[key] = max(self.acked[key], (value, time.monotonic()))
                self.slowest = max(self.slowest, took)
                self.slow += took > 1.0
                now = time.monotonic()
                if self.last_ack:
                    self.longest_gap = max(self.longest_gap, now - self.last_ack)
                self.last_ack = now

    async def run(self, event: Any, after: float) -> None:
        """The writers around ``event()`` (run in a thread: it blocks), stopped ``after`` s later."""
        stop = asyncio.Event()
        writers = [asyncio.ensure_future(self.write(self.keys[n :: self.tasks], stop)) for n in range(self.tasks)]
        try:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(event)
            await asyncio.sleep(after)
        finally:
            stop.set()
            await asyncio.gather(*writers)

    async def lost(self) -> list[str]:
        """Sessions that load back older than their last acknowledged save."""
        return [key for key in self.keys if await SessionStore(key).aget("n", -1) < self.acked[key][0]]


@dataclass
class ThreadedRuns:
    """What ``runs_in_threads`` saw: each loop's result, the errors, what was sent, from where."""

    results: list[Any]
    errors: list[BaseException]
    sent: Sent
    thread_ids: set[int | None]


def runs_in_threads(run: Callable[[], Coroutine[Any, Any, Any]], threads: int = 4) -> ThreadedRuns:
    """``asyncio.run(run())`` in ``threads`` threads at once, each with a loop of its own,
    with what the counting connections sent meanwhile."""
    runs = ThreadedRuns([], [], Sent(), set())

    def in_a_thread() -> None:
        try:
            runs.results.append(asyncio.run(run()))
        except BaseException as exc:  # reported to the caller
            runs.errors.append(exc)

    workers = [threading.Thread(target=in_a_thread) for _ in range(threads)]
    with sent_by_clients() as runs.sent:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    runs.thread_ids = {worker.ident for worker in workers}
    return runs


async def stored_session(data: dict[str, Any]) -> str:
    """The key of a new session holding ``data``, saved with ``asave``."""
    session = SessionStore()
    session.update(data)
    await session.asave()
    assert session.session_key is not None
    return session.session_key


async def first_operations(data: dict[str, Any]) -> str:
    """What a process's first requests do: a create, a save of ``data``, a load (checked to hold
    ``data``), and a load + save of a change (``n = 1``); the session's key."""
    session = SessionStore()
    await session.acreate()
    session.update(data)
    await session.asave()
    key = session.session_key
    assert key is not None
    assert data.items() <= (await SessionStore(key).aload()).items()  # (USER_SESSIONS adds its mark)
    loaded = SessionStore(key)
    await loaded.aset("n", 1)
    await loaded.asave()
    return key


@contextmanager
def native_only() -> Iterator[Sent]:
    """Count what is sent; on leaving, every round trip of the block must have left from
    this thread on an asyncio connection."""
    with sent_by_clients() as sent:
        yield sent
    assert sent.round_trips > 0
    assert sent.round_trips == sent.asyncio, f"{sent.round_trips - sent.asyncio} went through a sync connection"
    assert sent.threads == {threading.get_ident()}, "a round trip hopped to another thread"
