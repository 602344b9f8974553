"""Hash mode without Lua: each session field carries its own TTL (``HSETEX``, Redis 8.0+).

A field written here holds the session without the 4-byte expiry in its header:
Redis hides an expired field from every read at once, reclaims it by itself, and
deletes a bucket whose fields have all expired, so nothing sweeps these fields.
Each operation is one round trip of plain commands (``Call.more``: one pipeline,
not a transaction, so each list below is safe whatever another client runs
between its commands):

- save: ``HSETEX bucket FXX EX ttl FIELDS 1 field value`` (refused, so never a
  resurrection, when the field is missing or expired; a value of the script
  layout that expired since the request loaded it is refused before: see
  ``buckets.loaded_expiry``); create: the same with
  ``FNX``, and only when it is refused a second round trip (``HGET``) tells this
  very create, retried after its reply was lost (the same bytes: success), from a
  collision;
- both add ``EXPIRE bucket ttl GT``: a bucket written by the script layout
  (``lua.py``) carries a TTL of its own, which must never end before the fields
  written here (on a bucket without one, the command does nothing);
- a session larger than the bucket's limit goes under its overflow key first
  (``SET ... EX ttl``), then its 5-byte pointer (with its expiry, as the script
  layout writes it) into the bucket; a save refused leaves that key behind, so
  only then a second round trip deletes it. A session that shrinks back into its
  bucket leaves its overflow key to expire by itself (deleting it in the save
  could, between another save's two commands, leave a pointer to nothing);
- delete: ``HDEL`` and ``DEL`` of the overflow key.

Processes still on the script layout (a rolling deploy) read these fields as
live values without an expiry (Redis has hidden the expired ones), their
``HSET`` drops a field's TTL and writes the expiry into the value again, and
their ``EXPIRE ... NX`` gives a bucket without TTL one as long as the session
they write: see docs/hash-mode.md for when that matters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import CorruptSession
from ..format.codec import read_header
from .calls import Call

CREATE, UPDATE, UPSERT = 1, 0, 2  # the modes of buckets.py, the same numbers as the WRITE script's
CONDITION = {CREATE: ("FNX",), UPDATE: ("FXX",), UPSERT: ()}


def write(
    bucket: bytes,
    field: bytes,
    overflow: bytes,
    value: bytes,
    pointer: bytes | None,
    ttl: int,
    mode: int,
    replace_leftover: Callable[[], Call[bool]],
) -> Call[bool]:
    """The write of one field (``pointer``: the session is ``value`` under ``overflow``);
    ``replace_leftover``: the call that replaces an expired value of the script layout, which
    a refused create found in the field (``HSETEX FNX`` knows nothing of its header)."""
    stored = value if pointer is None else pointer
    commands: list[tuple[Any, ...]] = []
    if pointer is not None:
        # A create must not overwrite another session's overflow key (NX), and tells its own from it (GET).
        commands.append(("SET", overflow, value, "EX", ttl, *(("NX", "GET") if mode == CREATE else ())))
    commands.append(("HSETEX", bucket, *CONDITION[mode], "EX", ttl, "FIELDS", 1, field, stored))
    commands.append(("EXPIRE", bucket, ttl, "GT"))
    written = 0 if pointer is None else 1  # where HSETEX's reply is

    def parse(replies: list[Any]) -> bool | Call[bool]:
        if replies[written]:
            if mode == CREATE and pointer is not None and replies[0] is not None:
                # NX found a value under the overflow key of a field that did not exist: a stale one
                # (its session deleted by another engine), or ours from a retried create; either way
                # ours goes over it. (redis-py's SET callback, not told of GET, turns the old value
                # into False: only None, "the key was free", can be read from this reply.)
                return Call(("SET", overflow, value, "EX", ttl), lambda _: True, on=bucket)
            return True
        if mode == CREATE:
            return _created_before(
                bucket, field, overflow, stored, value if pointer is not None else None, replace_leftover
            )
        if pointer is not None:  # a refused save leaves its overflow key behind
            return Call(("DEL", overflow), lambda _: False, on=bucket)
        return False

    return Call(commands[0], parse, more=tuple(commands[1:]), on=bucket)


def _created_before(
    bucket: bytes,
    field: bytes,
    overflow: bytes,
    stored: bytes,
    value: bytes | None,
    replace_leftover: Callable[[], Call[bool]],
) -> Call[bool]:
    """After ``FNX`` refused: whether the field (and overflow key) hold exactly what this create
    writes, i.e. it is this very create, retried after its reply was lost."""

    def judge(old: bytes | None, mine: bool) -> bool | Call[bool]:
        if mine:
            return True
        return replace_leftover() if old is not None and expired_in_header(old) else False

    if value is None:
        return Call(("HGET", bucket, field), lambda old: judge(old, old == stored))
    return Call(
        ("HGET", bucket, field),
        lambda replies: judge(replies[0], replies == [stored, value]),
        more=(("GET", overflow),),
    )


def expired_in_header(value: bytes) -> bool:
    """Whether a value carries an expiry in its header (the script layout's) that has passed
    (by the web server's clock, as reads judge it)."""
    expires_at = header_expiry(value)
    return expires_at is not None and expires_at <= time.time()


def header_expiry(value: bytes) -> int | None:
    """The expiry in a value's header (the script layout's); None without one, or for garbage."""
    try:
        return read_header(value)[2]
    except CorruptSession:
        return None


def delete(bucket: bytes, field: bytes, overflow: bytes) -> Call[bool]:
    """``HDEL`` the field and ``DEL`` its overflow key; the reply: whether the field was there."""
    return Call(("HDEL", bucket, field), lambda replies: bool(replies[0]), more=(("DEL", overflow),))
