"""Count round trips where they happen: on the client's sockets.

Every alias of the test configurations uses ``CountingConnection`` (through
``CONNECTION_POOL_KWARGS``). Each call of ``send_packed_command`` is one
write to the socket, answered by one read: one round trip, however many
commands it carries (a pipeline). MONITOR on the server would miss some
commands (Redis hides CONFIG from it) and cannot tell a pipeline from
separate calls.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.connection import AbstractConnection, Connection, UnixDomainSocketConnection
from redis.sentinel import SentinelManagedConnection


@dataclass
class Sent:
    """What clients sent while counting: ``round_trips``, ``{command: count}`` and
    ``{port: round trips}`` (which server: a cluster node, for instance)."""

    round_trips: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    threads: set[int] = field(default_factory=set)  # where they were sent from (a thread hop shows here)
    asyncio: int = 0  # round trips sent by redis.asyncio connections
    ports: Counter[int] = field(default_factory=Counter)


_lock = threading.Lock()
_active: list[Sent] = []


def _command_names(packed: Iterable[bytes | memoryview]) -> list[str]:
    """The command names in RESP arrays of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``)."""
    data = b"".join(bytes(chunk) for chunk in packed)
    names, position = [], 0
    while position < len(data):
        end = data.index(b"\r\n", position)
        count = int(data[position + 1 : end])
        position = end + 2
        for index in range(count):
            end = data.index(b"\r\n", position)
            length = int(data[position + 1 : end])
            argument = data[end + 2 : end + 2 + length]
            if index == 0:
                names.append(argument.decode().lower())
            position = end + 2 + length + 2
    return names


def _record(command: Any, port: int = 0, native_async: bool = False) -> None:
    if not _active:
        return
    names = _command_names([command] if isinstance(command, (bytes, str)) else command)
    with _lock:
        for sent in _active:
            sent.round_trips += 1
            sent.commands.update(names)
            sent.threads.add(threading.get_ident())
            sent.asyncio += native_async
            sent.ports[port] += 1


class AsyncCountingConnection(AsyncConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _record(command, self.port, native_async=True)
        await super().send_packed_command(command, check_health)


class CountingConnection(Connection):
    async_connection_class = AsyncCountingConnection  # what cache_sessions.aio mirrors it with

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _record(command, self.port)
        super().send_packed_command(command, check_health)


class CountingUnixConnection(UnixDomainSocketConnection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _record(command)
        super().send_packed_command(command, check_health)


@contextmanager
def sent_by_clients() -> Iterator[Sent]:
    """Count what every counting connection of this process sends inside the block (all threads)."""
    sent = Sent()
    with _lock:
        _active.append(sent)
    try:
        yield sent
    finally:
        with _lock:
            _active.remove(sent)


@contextmanager
def sent_by_every_connection() -> Iterator[Sent]:
    """``sent_by_clients`` for pools that are not made of counting connections (a
    benchmark's, where a counting class would add a call to every timed command):
    redis-py's base connection class records what it sends while the block runs."""
    original = AbstractConnection.send_packed_command

    def send_packed_command(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        _record(command)
        original(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        with sent_by_clients() as sent:
            yield sent
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


class AsyncCountingSentinelConnection(AsyncSentinelManagedConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _record(command, self.port, native_async=True)
        await super().send_packed_command(command, check_health)


class CountingSentinelConnection(SentinelManagedConnection):
    """For the Sentinel configurations (a Sentinel pool needs its own connection class)."""

    async_connection_class = AsyncCountingSentinelConnection  # what the asyncio Sentinel pools use

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _record(command)
        super().send_packed_command(command, check_health)


@contextmanager
def sync_io_threads() -> Iterator[Counter[int]]:
    """``{thread id: count}`` of what any sync redis-py connection did on its socket inside the
    block (a connect, a send), whatever its class: an event loop's thread must not appear."""
    seen: Counter[int] = Counter()
    connect, send = AbstractConnection.connect, AbstractConnection.send_packed_command

    def counted_connect(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        seen[threading.get_ident()] += 1
        return connect(self, *args, **kwargs)

    def counted_send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        seen[threading.get_ident()] += 1
        send(self, command, check_health)

    AbstractConnection.connect = counted_connect  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        AbstractConnection.connect = connect  # type: ignore[method-assign]
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
