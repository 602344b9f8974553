"""Old stores in Redis: cache_sessions with other options (``USE_HASH``,
``BUCKETS``, generators, another alias) and django-redis-sessions, read as
their data lies.

Each read is built as ``Call``s (``storage/calls.py``; a second one when the
first reply shows it is needed: the TTL of a string found, the overflow key of
a big session), sent by the storage's executor (the old alias's own, or
``base.reader`` for a redis-py client), so the async twins send the very same
calls on ``redis.asyncio`` in the event loop, and fall back to a thread only
for a client that has no asyncio twin (Sentinel).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import errors, keys
from ..errors import CorruptSession
from ..format.codec import is_overflow_pointer, read_header
from ..storage.base import Storage
from ..storage.buckets import HashStorage
from ..storage.calls import Call
from ..storage.strings import StringStorage
from .base import BulkUnsupported, Entry, Found, Parse, Source, Unreadable, decode_signed, readable, reader, string_read


def walk_strings(
    redis: Any, pattern: bytes, key_of: Callable[[bytes], str], parse: Parse, batch_size: int
) -> Iterator[list[Entry]]:
    """Every string key matching ``pattern`` that names a valid session key: ``GET`` + ``PTTL`` in one
    pipeline per batch."""
    names = (name for name in redis.scan_iter(match=pattern, count=1000, _type="string"))
    batch: dict[bytes, None] = {}  # SCAN may return a name twice: once per batch (a later one finds it gone)
    for name in names:
        if keys.is_valid_session_key(key_of(name)):
            batch[name] = None
        if len(batch) >= batch_size:
            yield _string_entries(redis, list(batch), key_of, parse)
            batch = {}
    if batch:
        yield _string_entries(redis, list(batch), key_of, parse)


def _string_entries(redis: Any, names: list[bytes], key_of: Callable[[bytes], str], parse: Parse) -> list[Entry]:
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.get(name).pttl(name)
    replies = pipe.execute()
    entries = []
    for index, name in enumerate(names):
        data, ms = replies[2 * index : 2 * index + 2]
        if data is None or ms == -2:
            entries.append(Entry(key_of(name)))
            continue
        try:
            found = parse(data)
        except Unreadable as exc:
            entries.append(Entry(key_of(name), error=str(exc)))
            continue
        entries.append(Entry(key_of(name), Found(found.data, time.time() + ms / 1000 if ms > 0 else None)))
    return entries


def _escape(raw: bytes) -> bytes:
    return bytes(b for c in raw for b in ((92, c) if c in b"*?[]\\" else (c,)))


class CacheSessionsSource(Source):
    """cache_sessions on an alias with other options (``USE_HASH``, ``BUCKETS``, generators, another alias)."""

    native_async = True

    def __init__(self, old: Storage, ours: Storage, alias: str, same_alias: bool) -> None:
        self.old, self.ours, self.same_alias = old, ours, same_alias
        mode = "hash" if isinstance(old, HashStorage) else "string"
        self.name = f"cache_sessions ({mode} mode, CACHES[{alias!r}])"

    def _call(self, key: str) -> Call[Found | None] | None:
        if self.same_alias and self.old.locate(key) == self.ours.locate(key):
            return None  # the same place: ours already said it is not there
        if isinstance(self.old, HashStorage):
            bucket, field, overflow = self.old.locate(key)

            def got(data: bytes | None, expires_at: float | None = None) -> Found | Call[Found | None] | None:
                if data is not None and is_overflow_pointer(data):
                    at = read_header(data)[2]  # the pointer's: the overflow value need not carry one
                    return Call(("GET", overflow), lambda value: self._found(value, at))
                return self._found(data, expires_at)

            if not self.old.field_ttls():
                return Call(("HGET", bucket, field), got)

            def got_with_ttl(replies: list[Any]) -> Found | Call[Found | None] | None:
                data, (at,) = replies  # HPEXPIRETIME (ms): -1 without a TTL, -2 without the field
                return got(data, at / 1000 if at > 0 else None)

            # With field TTLs the value has no expiry in its header: its field's TTL is asked with it.
            return Call(("HGET", bucket, field), got_with_ttl, more=(("HPEXPIRETIME", bucket, "FIELDS", 1, field),))
        assert isinstance(self.old, StringStorage)
        return string_read(self.old.redis_key(key), self._parse)

    def _parse(self, data: bytes) -> Found:
        try:
            session, expires_at = self.old.codec.decode(data)
        except CorruptSession as exc:
            raise Unreadable(str(exc)) from None
        return Found(session, expires_at)

    def _parse_or_none(self, data: bytes | None) -> Found | None:
        return None if data is None else self._parse(data)

    def _found(self, data: bytes | None, expires_at: float | None) -> Found | None:
        """What ``data`` holds, its expiry from outside the value when the value has none."""
        found = readable(self._parse_or_none, data)
        if found is not None and found.expires_at is None and expires_at is not None:
            return Found(found.data, expires_at)
        return found

    def read(self, key: str) -> Found | None:
        call = self._call(key)
        return None if call is None else self.old.execute(call)

    async def aread(self, key: str) -> Found | None:
        await self.old.aprepare()  # field_ttls(), learnt without blocking the loop
        call = self._call(key)
        return None if call is None else await self.old.aexecute(call)

    def delete(self, key: str) -> None:
        if not (self.same_alias and self.old.locate(key) == self.ours.locate(key)):
            self.old.delete(key)

    async def adelete(self, key: str) -> None:
        if not (self.same_alias and self.old.locate(key) == self.ours.locate(key)):
            await self.old.adelete(key)

    def delete_many(self, session_keys: list[str]) -> None:
        if not isinstance(self.old, StringStorage):  # (hash mode cannot be walked)
            return super().delete_many(session_keys)
        gone = [key for key in session_keys if not (self.same_alias and self.old.locate(key) == self.ours.locate(key))]
        with errors.translated():
            for redis, names in self.old.by_server([self.old.redis_key(key) for key in gone]):
                if names:
                    redis.delete(*names)  # one DEL per batch

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        if isinstance(self.old, HashStorage) or self.old.options.key_generator is not None:
            made_by = "digests" if isinstance(self.old, HashStorage) else "KEY_GENERATOR"
            raise BulkUnsupported(
                f"{self.name} stores sessions under names made from their keys ({made_by}), "
                f"which cannot be turned back into session keys"
            )
        prefix = self.old.prefix
        return walk_strings(
            self.old.redis(), _escape(prefix) + b"*", lambda name: name[len(prefix) :].decode(), self._parse, batch_size
        )


class RedisSessionsSource(Source):
    """django-redis-sessions (``redis_sessions.session``): ``<prefix>:<key>`` holds Django's signed
    encoding of the session, with a Redis TTL. The server is a CACHES ``ALIAS``, or else the one its
    own settings name (``SESSION_REDIS``; the package must then stay installed while migrating)."""

    def __init__(self, connect: Callable[[str | None], Any], prefix: str, where: str, partitioned: bool = False):
        self.connect, self.prefix, self.partitioned = connect, prefix, partitioned
        self.name = f"redis_sessions.session ({where}, prefix {prefix!r})"
        self.native_async = True  # unless the client is a Sentinel one (then the executor hops to a thread)

    def _name(self, key: str) -> bytes:
        return (f"{self.prefix}:{key}" if self.prefix else key).encode()

    def _parse(self, data: bytes) -> Found:
        return Found(decode_signed(data), None)

    def read(self, key: str) -> Found | None:
        return reader(self.connect(key)).execute(string_read(self._name(key), self._parse))

    async def aread(self, key: str) -> Found | None:
        return await reader(self.connect(key)).aexecute(string_read(self._name(key), self._parse))

    def delete(self, key: str) -> None:
        reader(self.connect(key)).execute(Call(("DEL", self._name(key)), lambda _: None))

    async def adelete(self, key: str) -> None:
        await reader(self.connect(key)).aexecute(Call(("DEL", self._name(key)), lambda _: None))

    def delete_many(self, session_keys: list[str]) -> None:
        groups: dict[int, tuple[Any, list[bytes]]] = {}
        for key in session_keys:  # by server: the package's POOL spreads keys over several
            redis = self.connect(key)
            groups.setdefault(id(redis), (redis, []))[1].append(self._name(key))
        with errors.translated():
            for redis, names in groups.values():
                redis.delete(*names)

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        if self.partitioned:
            raise BulkUnsupported(
                f"{self.name} spreads sessions over SESSION_REDIS['POOL']: run once per server, with "
                f"MIGRATE_FROM {{'ENGINE': 'redis_sessions.session', 'ALIAS': <a CACHES alias on it>}}"
            )
        start = len(self.prefix) + 1 if self.prefix else 0
        pattern = _escape(self.prefix.encode()) + b":*" if self.prefix else b"*"
        return walk_strings(self.connect(None), pattern, lambda name: name[start:].decode(), self._parse, batch_size)
