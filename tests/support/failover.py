"""Save loops that count what a failover costs: acknowledged saves lost, and errors.

A ``SaveLoop`` runs in a thread on one cache alias: it keeps loading and
saving its sessions (``rounds`` of ``len(keys)`` requests), each save writing
``n = last acknowledged n + 1``. A save is *acknowledged* when ``save()``
returned. An acknowledged save is *lost* when a later load returns an older
``n`` (or no session), or when, after the loop, the new primary holds an
older ``n`` than the last acknowledged one (``lost_at_the_end``, what a user
sees for good). Errors (``SessionStoreUnavailable``) are counted with the
time of the first and the last: the error window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib.sessions.backends.base import UpdateError

from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.storage.base import Storage as Sessions
from cache_sessions.storage.registry import sessions_for


def store_on(alias: str) -> type[SessionStore]:
    """``SessionStore`` on ``alias`` instead of SESSION_CACHE_ALIAS (several loops at once)."""

    class Store(SessionStore):
        @cached_property
        def _storage(self) -> Sessions:
            return sessions_for(alias)

    return Store


@dataclass
class SaveLoop:
    alias: str
    sessions: int = 200
    acked: dict[str, int] = field(default_factory=dict)
    saves: int = 0
    lost_seen: set[str] = field(default_factory=set)  # keys whose load went back in time
    errors: int = 0
    first_error: float | None = None
    last_error: float | None = None
    last_ack: float = 0.0
    longest_gap: float = 0.0  # the longest time without an acknowledged save (errors and waits)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    failure: BaseException | None = None

    def prepare(self) -> None:
        store = store_on(self.alias)
        for _ in range(self.sessions):
            session = store()
            session["n"] = 0
            session.save()
            assert session.session_key is not None
            self.acked[session.session_key] = 0

    def start(self) -> SaveLoop:
        self.thread = threading.Thread(target=self._run, name=f"save loop {self.alias}", daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(30)
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        store = store_on(self.alias)
        try:
            while not self.stop.is_set():
                for key in self.acked:
                    if self.stop.is_set():
                        return
                    self._request(store, key)
        except BaseException as exc:  # reported by finish()
            self.failure = exc

    def _request(self, store: type[SessionStore], key: str) -> None:
        try:
            session = store(key)
            n = session.get("n")
            if n is None or n < self.acked[key]:
                self.lost_seen.add(key)
                if n is None:
                    return
            session["n"] = self.acked[key] + 1
            session.save()
        except SessionStoreUnavailable:
            now = time.monotonic()
            self.errors += 1
            self.first_error = self.first_error or now
            self.last_error = now
            time.sleep(0.005)
            return
        except UpdateError:
            self.lost_seen.add(key)
            return
        self.acked[key] += 1
        self.saves += 1
        now = time.monotonic()
        if self.last_ack:
            self.longest_gap = max(self.longest_gap, now - self.last_ack)
        self.last_ack = now

    def lost_at_the_end(self, check_alias: str) -> set[str]:
        """Keys whose last acknowledged save is not what ``check_alias`` (the new primary) holds."""
        store = store_on(check_alias)
        return {key for key, n in self.acked.items() if (store(key).get("n") or -1) < n}

    def error_window(self) -> float:
        if self.first_error is None or self.last_error is None:
            return 0.0
        return self.last_error - self.first_error

    def summary(self, check_alias: str) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "acknowledged saves": self.saves,
            "sessions whose acknowledged save a later load missed": len(self.lost_seen),
            "sessions whose last acknowledged save is lost": len(self.lost_at_the_end(check_alias)),
            "errors": self.errors,
            "error window (s)": round(self.error_window(), 2),
            "longest time without an acknowledged save (s)": round(self.longest_gap, 2),
        }
