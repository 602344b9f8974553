"""One attempt at one call on one redis-py client, sync (``send``) or asyncio (``asend``):
what the executor (``executor.py``) retries, as its topology says.

A call of one command is sent as it is, its script loaded again on NOSCRIPT; a
call of several (``Call.more``) goes in one round trip: on one server's client,
one write of packed commands on a connection of its pool, without a redis-py
Pipeline object per call; on a cluster's client, redis-py's pipeline (which
routes by slot). ``MIN_REPLICAS_ACK``'s WAIT goes last, in the same round trip.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError, ResponseError

if TYPE_CHECKING:
    from .acks import Acks
    from .calls import Call

_pack_in_c: Callable[[tuple[Any, ...]], bytes] | None
try:  # packs a command in C; redis-py's packer first walks every argument in Python (~4 µs a command)
    from hiredis import pack_command as _pack_in_c
except ImportError:  # hiredis is optional
    _pack_in_c = None


@cache
def _is_utf8(encoding: str) -> bool:
    """Whether a client's ``encoding`` names UTF-8 (hiredis encodes text that way)."""
    return codecs.lookup(encoding).name == "utf-8"


def send(redis: Redis, call: Call[Any], acks: Acks | None) -> Any:
    """One attempt at ``call`` on ``redis``, reloading its script on NOSCRIPT (``acks``: the
    WAIT of MIN_REPLICAS_ACK, in the same round trip)."""
    assert call.args is not None
    if call.more:
        if isinstance(redis, Redis):  # one server's client (not a cluster's): no Pipeline object
            return _replies(_round_trip(redis, _with_wait(call, acks)), acks)
        return _replies(_pipeline(redis, call, acks).execute(), acks)
    if acks is not None:
        return acks.send(redis, call)
    command: Any = redis.execute_command  # untyped in redis-py
    try:
        return command(*call.args, **call.options)
    except NoScriptError:  # a new, restarted or flushed server, or a promoted replica
        if call.script is None:
            raise
        redis.script_load(call.script.source)
        return command(*call.args, **call.options)


async def asend(redis: AsyncRedis, call: Call[Any], acks: Acks | None) -> Any:
    """``send`` on ``redis.asyncio``."""
    assert call.args is not None
    if call.more:
        if isinstance(redis, AsyncRedis):
            return _replies(await _around_trip(redis, _with_wait(call, acks)), acks)
        return _replies(await _pipeline(redis, call, acks).execute(), acks)
    if acks is not None:
        return await acks.asend(redis, call)
    command: Any = redis.execute_command  # untyped in redis-py
    try:
        return await command(*call.args, **call.options)
    except NoScriptError:
        if call.script is None:
            raise
        await redis.script_load(call.script.source)
        return await command(*call.args, **call.options)


def _with_wait(call: Call[Any], acks: Acks | None) -> tuple[tuple[Any, ...], ...]:
    """A call's commands, MIN_REPLICAS_ACK's WAIT last."""
    if acks is None:
        return call.commands
    return (*call.commands, ("WAIT", acks.replicas, acks.timeout_ms))


# A call of several commands on one server's client, as redis-py's own pipeline sends them
# (one write of packed commands on a connection of the client's pool, then every reply read,
# through the client's response callbacks, before the first error reply is raised: the
# connection is never left with unread replies), without making a Pipeline object per call
# (about 10 µs of client CPU per save). Errors go as a pipeline's do: the connection's
# Retry runs the attempt (a lost connection is dropped, as redis-py's failure handler does)
# and the topology's RETRY policy retries what still fails. tests/test_upstream.py pins the
# redis-py interfaces used here. A cluster client keeps redis-py's pipeline (slot routing).


def _round_trip(redis: Redis, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    """``commands`` on a connection of ``redis``'s pool, in one round trip: their replies."""
    pool: Any = redis.connection_pool  # untyped in redis-py 7.4
    connection: Any = pool.get_connection()
    try:
        replies: list[Any] = connection.retry.call_with_retry(
            partial(_exchange, redis, connection, commands), partial(_drop, connection)
        )
        return replies
    finally:
        pool.release(connection)


def _packed(connection: Any, commands: tuple[tuple[Any, ...], ...]) -> Any:
    """``commands`` in the protocol, for one write: by hiredis where it is installed and the
    client encodes text as UTF-8, as hiredis does (the engine's own words are ASCII; names and
    values are bytes); else by the connection's packer. The same bytes either way (pinned by
    tests/test_upstream.py)."""
    encoder = getattr(connection, "encoder", None)  # (redis-py's client-side cache's connection has none)
    if _pack_in_c is not None and encoder is not None and _is_utf8(encoder.encoding):
        try:
            return [b"".join([_pack_in_c(command) for command in commands])]  # a list: bytes would go int by int
        except TypeError:  # an argument hiredis does not take (a bytearray, a bool): redis-py's packer judges it
            pass
    return connection.pack_commands(commands)


def _exchange(redis: Any, connection: Any, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    connection.send_packed_command(_packed(connection, commands))
    replies: list[Any] = []
    error: ResponseError | None = None
    try:
        for command in commands:
            try:
                replies.append(redis.parse_response(connection, command[0]))
            except ResponseError as exc:  # read; the replies after it are read too
                error = error or exc
                replies.append(exc)
    except BaseException:  # replies left unread: the connection must not go back as it is
        connection.disconnect()
        raise
    if error is not None:
        raise error
    return replies


def _drop(connection: Any, error: Exception) -> None:
    connection.disconnect()


async def _around_trip(redis: AsyncRedis, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    """``_round_trip`` on ``redis.asyncio``."""
    pool: Any = redis.connection_pool
    connection: Any = await pool.get_connection()
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            partial(_aexchange, redis, connection, commands), partial(_adrop, connection)
        )
        return replies
    finally:
        await pool.release(connection)


async def _aexchange(redis: Any, connection: Any, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    await connection.send_packed_command(_packed(connection, commands))
    replies: list[Any] = []
    error: ResponseError | None = None
    try:
        for command in commands:
            try:
                replies.append(await redis.parse_response(connection, command[0]))
            except ResponseError as exc:
                error = error or exc
                replies.append(exc)
    except BaseException:  # a cancelled task included
        await connection.disconnect(nowait=True)
        raise
    if error is not None:
        raise error
    return replies


async def _adrop(connection: Any, error: Exception) -> None:
    await connection.disconnect()


def _pipeline(redis: Any, call: Call[Any], acks: Acks | None) -> Any:
    """A call of several commands as one pipeline (sync or async), MIN_REPLICAS_ACK's WAIT last;
    made anew by each attempt."""
    pipe = redis.pipeline(transaction=False)
    for command in call.commands:
        pipe.execute_command(*command)
    if acks is not None:
        pipe.execute_command("WAIT", acks.replicas, acks.timeout_ms)
    return pipe


def _replies(replies: list[Any], acks: Acks | None) -> list[Any]:
    if acks is not None:
        acks.check(replies.pop())
    return replies
