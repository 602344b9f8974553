"""Following a Sentinel group's failovers as they happen, once per process.

redis-py asks the sentinels where the primary is only when it opens a
connection, so after a failover its open connections keep writing to the
old primary until Sentinel demotes it (~10 s later for ``SENTINEL
FAILOVER``), and the new primary never sees those writes: measured here,
the last save of most sessions written in that time was lost. A ``Follower``
listens to every sentinel of the group (a daemon thread per sentinel, one
pub/sub connection each) and acts on the pools it watches
(``sentinel.FollowingPool``):

- ``+selected-slave`` (the leading sentinel chose the replica it will
  promote, ~0.1 s before it does): the service's pools *pause*: new commands
  wait (at most ``PAUSE_SECONDS``) instead of writing to a primary that is
  about to lose them. Redis's own ``FAILOVER`` pauses writes on the server
  the same way; ``SENTINEL FAILOVER`` does not.
- ``+switch-master``: the pools take the new address, close their idle
  connections to the old primary, and resume. A connection in use is never
  closed under its command: redis-py closes it when it comes back to the
  pool (``SentinelConnectionPool.owns_connection``).
- ``-failover-abort-*``: resume on the same primary.

The threads start with the first command of a watched pool in a process,
and again in a child after ``fork()`` (threads do not survive it; the
child's pools are redis-py's, reset on first use). After a lost connection a
thread reconnects with backoff and asks where the primary is, in case it
missed a switch meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any, Protocol

from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("cache_sessions")

PAUSE_SECONDS = 2.0  # the longest a command waits for a failover that was announced (one takes about half that)
LISTEN_SECONDS = 5.0  # a quiet pub/sub connection is PINGed after this long, and dropped if still quiet
WAKE_SECONDS = 1.0  # how often a listening thread looks up (is it stopped? is it in a forked child?)
RECONNECT_SECONDS = (0.1, 2.0)  # first and longest wait before reconnecting to a sentinel
CHANNELS = ("+selected-slave", "+switch-master")
ABORTS = "-failover-abort-*"


class Watched(Protocol):
    service_name: str

    def pause(self, seconds: float) -> None: ...

    def switch(self, address: tuple[str, int]) -> bool: ...

    def resume(self) -> None: ...

    def rediscover(self) -> None: ...


class Follower:
    """The failover follower of one Sentinel group (its addresses and credentials) in this process."""

    def __init__(self, sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> None:
        self.sentinels = sentinels
        self.sentinel_kwargs = dict(sentinel_kwargs)
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self.pid = 0  # the process whose threads are listening (0: none yet)
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def watch(self, pool: Watched) -> None:
        self.pools.add(pool)

    def ensure_running(self) -> None:
        """Start listening in this process if it does not yet (cheap when it does)."""
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid() or self.stopped.is_set():
                return
            self.pid = os.getpid()
            for host, port in self.sentinels:
                name = f"cache_sessions sentinel follower {id(self):x} {host}:{port}"
                threading.Thread(target=self._listen, args=(host, port), name=name, daemon=True).start()

    def stop(self) -> None:
        """Stop listening (tests); the threads end within ``WAKE_SECONDS``."""
        self.stopped.set()

    # The listening threads --------------------------------------------------

    def _listen(self, host: str, port: int) -> None:
        pid, wait, connected_before = os.getpid(), RECONNECT_SECONDS[0], False
        while not self.stopped.is_set() and self.pid == pid:
            try:
                sentinel: Any = Redis(host, port, **self.sentinel_kwargs)
                pubsub = sentinel.pubsub()
                try:
                    pubsub.subscribe(*CHANNELS)
                    pubsub.psubscribe(ABORTS)
                    if connected_before:
                        self._rediscover()  # a switch may have happened while this thread was away
                    connected_before, wait = True, RECONNECT_SECONDS[0]
                    self._receive(pubsub, pid)
                finally:
                    pubsub.close()
            except (RedisError, OSError) as exc:
                logger.debug("Sentinel %s:%s: %s; reconnecting in %.1f s", host, port, exc, wait)
            self.stopped.wait(wait)
            wait = min(wait * 2, RECONNECT_SECONDS[1])

    def _receive(self, pubsub: Any, pid: int) -> None:
        heard, pinged = time.monotonic(), False
        while not self.stopped.is_set() and self.pid == pid:
            message = pubsub.get_message(timeout=WAKE_SECONDS)
            now = time.monotonic()
            if message is not None:  # an event, a subscription's confirmation or a PONG: alive
                heard, pinged = now, False
                if message["type"] in ("message", "pmessage"):
                    try:
                        self.handle(_text(message["channel"]), _text(message["data"]))
                    except Exception:  # an event this code misreads must not stop the listening
                        logger.exception("Sentinel: could not act on %r", message)
            elif now - heard >= LISTEN_SECONDS:
                if pinged:
                    raise TimeoutError(f"no answer to PING in {LISTEN_SECONDS} s")
                pubsub.ping()
                heard, pinged = now, True

    def handle(self, channel: str, data: str) -> None:
        """Act on one Sentinel event (``channel``, its text)."""
        words = data.split()
        if channel == "+switch-master" and len(words) == 5:
            service, address = words[0], (words[3], int(words[4]))
            moved = [pool.switch(address) for pool in self._pools(service)]
            if any(moved):  # every sentinel announces it: say it once
                logger.warning("Sentinel: the primary of %r is now %s:%s.", service, *address)
        elif channel == "+selected-slave" and "@" in words:
            for pool in self._pools(words[words.index("@") + 1]):
                pool.pause(PAUSE_SECONDS)
        elif channel.startswith("-failover-abort") and len(words) >= 2:
            for pool in self._pools(words[words.index("@") + 1] if "@" in words else words[1]):
                pool.resume()

    def _pools(self, service: str) -> list[Watched]:
        return [pool for pool in list(self.pools) if pool.service_name == service]

    def _rediscover(self) -> None:
        for pool in list(self.pools):
            try:
                pool.rediscover()
            except (RedisError, OSError) as exc:
                logger.debug("Sentinel: could not find the primary of %r: %s", pool.service_name, exc)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


_followers: dict[tuple[Any, ...], Follower] = {}
_lock = threading.Lock()
_SCALARS = (str, bytes, int, float, type(None))
_OBJECT = object()  # what _plain gives for a value that is not plain data


def follower_for(sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> Follower:
    """The process's follower of the group these sentinels (and credentials) make up."""
    key = group_key(sentinels, sentinel_kwargs)
    with _lock:
        follower = _followers.get(key)
        if follower is None:
            follower = _followers[key] = Follower(list(sentinels), sentinel_kwargs)
    return follower


def group_key(sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one group of sentinels from another: their addresses and the plain values
    of the kwargs (username, password, ``ssl*``, db, timeouts...). Objects (the ``Retry``
    that redis-py adds to every ``Sentinel``'s kwargs, a credential provider) are left out:
    two equal ones are distinct objects, so they would give every pool a follower of its
    own. The follower listens with the kwargs of the first pool of its group."""
    values = {name: _plain(value) for name, value in sentinel_kwargs.items()}
    plain = sorted((name, value) for name, value in values.items() if value is not _OBJECT)
    return tuple(sorted((str(host), int(port)) for host, port in sentinels)), tuple(plain)


def _plain(value: Any) -> Any:
    """``value`` if it is plain data (scalars, and tuples or lists of them, as a tuple), else ``_OBJECT``."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(item, _SCALARS) for item in value):
        return tuple(value)
    return _OBJECT


def _after_fork_in_child() -> None:
    # A lock held by a thread of the parent at fork time would stay held forever here.
    global _lock
    _lock = threading.Lock()
    for follower in _followers.values():
        follower.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
