"""A deadline on a session operation: it answers or fails within ``OPERATION_TIMEOUT``.

On Redis Cluster an operation may meet a failover: a primary killed, its
replica promoted seconds later. Waiting that out is better than an error, but
not for ever. redis-py's cluster client retries on its own, how often and how
long depends on its version (a count of attempts, each with its own socket
timeouts, topology refreshes and fixed sleeps), so a bound cannot come from a
count of retries. It comes from a clock instead:

- ``within(seconds)`` starts the operation's deadline (its follow-up calls
  share it);
- ``retrying`` sends the operation again after each failure a failover
  explains, with backoff, until it succeeds or the deadline comes;
- the cluster client's own retry policy makes no retry inside a deadline
  (``bounded_retry``): every attempt is ours, and ours stop in time;
- every socket wait of its connections (connect, handshake, reply) is cut to
  the time left (``bounded_connection``): a dead or hung node cannot hold an
  attempt past the deadline, whatever redis-py does around it.

Outside a deadline (the alias's ordinary cache calls, sweeps) nothing
changes: the same client, connections and retries behave as redis-py's.

On asyncio (``aretrying``), the same loop of attempts runs each attempt under
``asyncio.timeout(time left)``: a cancellation cuts every wait inside it
(connect, reply, redis-py's own sleeps), and redis-py drops a connection whose
reply was cut off. The asyncio cluster client makes no retry of its own
(``async_cluster.py``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.connection import Connection

T = TypeVar("T")

# redis-py's cluster client sleeps a fixed 0.25 s after CLUSTERDOWN or an uncovered slot
# before it raises, beyond the reach of the socket cuts: the last attempt must start
# that much before the end.
RESERVE = 0.3

_deadline: ContextVar[float | None] = ContextVar("cache_sessions_deadline", default=None)


class TimeIsUp(redis_errors.TimeoutError):
    """The operation's deadline came before Redis answered."""


def remaining() -> float | None:
    """Seconds left to the current operation's deadline (None: no deadline)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


class within:  # a function to its callers; a class, because it runs on every operation
    """Run the block under a deadline ``seconds`` from now, unless one is running already."""

    __slots__ = ("seconds", "token")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.token: Token[float | None] | None = None

    def __enter__(self) -> None:
        if _deadline.get() is None:
            self.token = _deadline.set(time.monotonic() + max(0.0, self.seconds - RESERVE))

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _deadline.reset(self.token)
            self.token = None


def retrying(attempt: Callable[[], T], is_retryable: Callable[[Exception], bool], backoff: Any) -> T:
    """``attempt()`` until it succeeds, fails in a way no retry cures, or the deadline comes
    (then its last error is raised). The waits between attempts follow ``backoff`` (a
    redis-py ``AbstractBackoff``)."""
    failures = 0
    while True:
        try:
            return attempt()
        except Exception as exc:
            left = remaining()
            if left is None or left <= 0 or not is_retryable(exc):
                raise
            failures += 1
            if failures == 1:
                backoff.reset()
            time.sleep(min(backoff.compute(failures), left))
            if (remaining() or 0) <= 0:
                raise


async def abounded(awaitable: Awaitable[T]) -> T:
    """``awaitable`` awaited until the deadline at most (one attempt, no retry): what learns a
    server's facts on the way to an operation must not hold it past its bound."""
    left = remaining()
    if left is None:
        return await awaitable
    try:
        async with asyncio.timeout(max(left, 0.0)):
            return await awaitable
    except TimeoutError as exc:  # asyncio's (the builtin): redis-py's own is a RedisError
        raise TimeIsUp("the session operation's time was up before Redis answered") from exc


async def aretrying(
    attempt: Callable[[], Awaitable[T]],
    is_retryable: Callable[[Exception], bool],
    backoff: Any,
    judged: Callable[[Exception], Exception] | None = None,
) -> T:
    """``retrying`` on asyncio: each attempt is cancelled when the deadline comes. ``judged``
    (if given) turns an attempt's error into the one to judge and raise (or returns it)."""
    failures = 0
    while True:
        try:
            left = remaining()
            if left is not None and left <= 0:
                raise TimeIsUp("the session operation's time was up before Redis was asked")
            return await abounded(attempt())
        except Exception as exc:
            error = exc if judged is None else judged(exc)
            left = remaining()
            if left is None or left <= 0 or not is_retryable(error):
                if error is exc:
                    raise
                raise error from exc
            failures += 1
            if failures == 1:
                backoff.reset()
            await asyncio.sleep(min(backoff.compute(failures), left))
            if (remaining() or 0) <= 0:
                if error is exc:
                    raise
                raise error from exc


# The cluster client's retry policy ------------------------------------------------


class _NoRetryWithin:
    """Mixed into the cluster client's retry policy: no retries inside a deadline."""

    def get_retries(self) -> int:
        if _deadline.get() is not None:
            return 0
        return int(super().get_retries())  # type: ignore[misc]


def bounded_retry(retry: Any) -> Any:
    """A copy of ``retry`` (a redis-py ``Retry``) that retries nothing inside a deadline."""
    cls = _subclass(_NoRetryWithin, type(retry))
    bounded: Any = object.__new__(cls)
    bounded.__dict__.update(vars(retry))
    return bounded


# The cluster client's connections ---------------------------------------------------


class _CutToDeadline:
    """Mixed into a redis-py connection class: inside a deadline, each socket wait lasts
    at most the time left, and nothing is sent once it is up."""

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: socket.socket | None

    def _connect(self) -> Any:
        left = remaining()
        if left is None:
            return super()._connect()  # type: ignore[misc]
        if left <= 0:
            raise TimeoutError("the session operation's time is up")  # socket.timeout: redis-py's "Timeout connecting"
        configured = self.socket_connect_timeout
        if configured is None or configured > left:
            self.socket_connect_timeout = left
        try:
            return super()._connect()  # type: ignore[misc]
        finally:
            self.socket_connect_timeout = configured

    def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        return self._cut(super().send_packed_command, "sent", *args, **kwargs)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._cut(super().read_response, "answered", *args, **kwargs)  # type: ignore[misc]

    def _cut(self, wait: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
        """``wait(*args, **kwargs)`` on a socket whose timeout is at most the time left."""
        left, sock = remaining(), self._sock
        if left is None or sock is None or (self.socket_timeout is not None and left >= self.socket_timeout):
            return wait(*args, **kwargs)
        if left <= 0:
            self.disconnect()  # type: ignore[attr-defined]  # a reply that may still come is nobody's
            raise TimeIsUp(f"the session operation's time was up before Redis {what}")
        sock.settimeout(left)
        try:
            return wait(*args, **kwargs)
        finally:
            if self._sock is sock:
                sock.settimeout(self.socket_timeout)


def bounded_connection(connection_class: type) -> type:
    """``connection_class`` whose socket waits stop at the deadline (the same class outside one)."""
    return _subclass(_CutToDeadline, connection_class)


class _BoundedConnections:
    """Mixed into a redis-py connection pool class: its connections are ``bounded_connection``s
    of the class it is given (the URL's ``SSLConnection``, ``CONNECTION_POOL_KWARGS``'s...)."""

    def __init__(self, *args: Any, connection_class: type = Connection, **kwargs: Any) -> None:
        super().__init__(*args, connection_class=bounded_connection(connection_class), **kwargs)  # type: ignore[call-arg]


def bounded_pool(pool_class: type) -> type:
    """``pool_class`` making bounded connections."""
    return _subclass(_BoundedConnections, pool_class)


_subclasses: dict[tuple[type, type], type] = {}


def _subclass(mixin: type, base: type) -> type:
    """``base`` with ``mixin`` first in its MRO, under ``base``'s name (made once per pair)."""
    if issubclass(base, mixin):
        return base
    made = _subclasses.get((mixin, base))
    if made is None:
        namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__}
        made = _subclasses.setdefault((mixin, base), type(base.__name__, (mixin, base), namespace))
    return made
