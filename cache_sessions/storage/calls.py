"""A round trip, as the storage modes describe it: a ``Call`` (the command and how to
read its reply), and running operations made of several (``drive``/``adrive``).

Calls are data: a storage mode builds them once, and either executor sends them
(``executor.py``: ``execute`` on redis-py, ``aexecute`` on ``redis.asyncio``).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .lua import Script

T = TypeVar("T")
# The plain commands of the storage modes that write (what MIN_REPLICAS_ACK waits for).
WRITE_COMMANDS = frozenset({"SET", "DEL", "HSETEX", "HDEL"})


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is slower, and one is made per round trip
class Call(Generic[T]):
    """One round trip: the command to send and how to read its reply (never changed once made).

    ``parse`` may return another ``Call`` instead of a result: a second round trip
    that the reply showed is needed (a create refused: was it this very create,
    retried?); both executors send it in turn.

    ``more``: further commands sent after ``args`` in the same round trip (one
    pipeline write, not a transaction: each command of the list must be safe
    whatever runs between them); ``parse`` then gets the list of their replies,
    ``args``'s first. A retry sends the whole list again.
    """

    args: tuple[Any, ...] | None  # None: nothing to send; the result is parse(None)
    parse: Callable[[Any], T | Call[T]]
    script: Script | None = None  # args is an EVALSHA of this script (SCRIPT LOAD on NOSCRIPT)
    options: Mapping[str, Any] = field(default_factory=dict)  # for redis-py's reply callbacks
    fallback: Callable[[], Call[T]] | None = None  # sent instead when the server's error says fallback_on
    fallback_on: str = "syntax error"
    more: tuple[tuple[Any, ...], ...] = ()
    on: bytes | None = None  # the name whose server gets the call, if not its first key (a bucket's overflow key)

    @property
    def commands(self) -> tuple[tuple[Any, ...], ...]:
        """Every command of the round trip, as a pipeline sends them (a script as EVAL)."""
        return (pipelined(self), *self.more)

    @property
    def route(self) -> bytes:
        """The key that decides which server gets the call (its first key)."""
        assert self.args is not None
        if self.on is not None:
            return self.on
        return self.args[3] if self.args[0] == "EVALSHA" else self.args[1]  # type: ignore[no-any-return]

    @property
    def needs_ack(self) -> bool:
        """Whether the call changes a session or record (what ``MIN_REPLICAS_ACK`` waits for)."""
        if self.args is None:
            return False
        if self.script is not None:
            return self.script.needs_ack
        return self.args[0] in WRITE_COMMANDS or any(command[0] in WRITE_COMMANDS for command in self.more)


def evalsha(script: Script, keys: list[bytes], args: list[Any], parse: Callable[[Any], T]) -> Call[T]:
    return Call(("EVALSHA", script.sha, len(keys), *keys, *args), parse, script)


def answer(value: T) -> Call[T]:
    """A call that needs no round trip."""
    return Call(None, lambda _: value)


S = TypeVar("S")
R = TypeVar("R")


def drive(steps: Generator[S, Any, R], execute: Callable[[S], Any]) -> R:
    """Run an operation written as a generator of calls (each reply is sent back in)
    with the sync executor (``Executor.execute``, or ``execute_many`` for lists)."""
    reply = None
    try:
        while True:
            reply = execute(steps.send(reply))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def adrive(steps: Generator[S, Any, R], execute: Callable[[S], Awaitable[Any]]) -> R:
    """``drive`` with an async executor: the same operation, on ``redis.asyncio``."""
    reply = None
    try:
        while True:
            reply = await execute(steps.send(reply))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def pipelined(call: Call[Any]) -> tuple[Any, ...]:
    """A call's command for a pipeline: a script goes as EVAL (a pipeline cannot answer NOSCRIPT)."""
    assert call.args is not None
    if call.script is None:
        return call.args
    return ("EVAL", call.script.source, *call.args[2:])
