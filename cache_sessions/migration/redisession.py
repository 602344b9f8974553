"""Old store: django-redisession (``redisession.backend``), read as it lies in Redis.

django-redisession 0.3.1 installs on Python 3.11-3.13 but does not run there,
nor on Django 4+: it imports ``pickle`` from Django's session base (gone),
decodes keys with Python 2's ``'hex'`` codec and builds values as ``str``.
So its format is read here, from its 0.3.1 source: no prefix; string mode
``KEY_GENERATOR(key)`` holds ``flag byte + pickle`` with a Redis TTL; hash
mode stores in the hash ``HASH_KEY_GENERATOR(key)``, field
``KEY_GENERATOR(key)``, ``4-byte big-endian absolute expiry + flag byte +
pickle``; flag bit 0 means the pickle is compressed with ``COMPRESS_LIB``.
Its pickles are never unpickled: ``pickled.py`` reads the plain data they
describe (dicts, lists, strings, numbers, dates: nothing that can run code),
within bounds of size, depth and work, and Python 2's byte strings are read as
UTF-8 text. Whatever goes wrong reading a value makes it ``Unreadable``: no
session, with a warning. A value found unreadable is not deleted (the old store
may be shared with other data, or read-only) but remembered by its digest, so
that the same bytes are not parsed again by this process.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ..format.compression import Compression
from ..storage.calls import Call
from . import pickled
from .base import BulkUnsupported, Entry, Found, Source, Unreadable, readable, reader, string_read
from .pickle_machine import LIMITS

FLAG_COMPRESSED = 1
_EXPIRY = struct.Struct(">I")


def unpickle(payload: bytes) -> Any:
    """The plain data of a pickle, read without unpickling (``pickled.py``). Python 2's
    (protocol 0-2) byte strings become text where they are UTF-8."""
    python2 = not (payload[:1] == b"\x80" and len(payload) > 1 and payload[1] >= 3)
    value = pickled.loads(payload)
    try:
        return _text(value) if python2 else value
    except Exception as exc:  # within pickled's bounds nothing should fail here; still, never a 500
        raise Unreadable(f"unreadable pickle ({type(exc).__name__})") from None


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {_text(key): _text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_text(item) for item in value)
    return value


class Remembered:
    """Digests of values found unreadable, each with the reason (the newest ``size``, per process)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.reasons: OrderedDict[bytes, str] = OrderedDict()
        self.lock = threading.Lock()

    def reason(self, digest: bytes) -> str | None:
        with self.lock:
            return self.reasons.get(digest)

    def add(self, digest: bytes, reason: str) -> None:
        with self.lock:
            self.reasons[digest] = reason
            while len(self.reasons) > self.size:
                self.reasons.popitem(last=False)


# A stored value past this cannot hold a pickle ``pickled`` reads, even compressed (snappy's worst case).
MAX_VALUE = LIMITS.max_bytes + LIMITS.max_bytes // 6 + 64


class RedisessionSource(Source):
    """django-redisession (``redisession.backend``), read as it lies in Redis (see the module docstring)."""

    def __init__(
        self,
        redis: Any,
        use_hash: bool,
        key_generator: Callable[[str], Any],
        hash_key_generator: Callable[[str], Any],
        compression: Compression | None,
        where: str,
    ) -> None:
        self.reader = reader(redis)
        self.use_hash, self.compression = use_hash, compression
        self.key_generator, self.hash_key_generator = key_generator, hash_key_generator
        self.name = f"redisession.backend ({'hash' if use_hash else 'string'} mode, {where})"
        self.native_async = True
        self.unreadable = Remembered()

    def _names(self, key: str) -> tuple[bytes, ...] | None:
        """(name,) or (hash, field); None when a generator fails on the key (the old engine skipped it too)."""
        try:
            names = (
                (self.hash_key_generator(key), self.key_generator(key)) if self.use_hash else (self.key_generator(key),)
            )
        except Exception:
            return None
        return tuple(name.encode() if isinstance(name, str) else bytes(name) for name in names)

    def _payload(self, data: bytes) -> dict[str, Any]:
        """The session in a value (flag byte + pickle); a value seen unreadable before is not read again."""
        if len(data) > MAX_VALUE:
            raise Unreadable(f"a value of {len(data):,} bytes, over {MAX_VALUE:,}")
        digest = hashlib.blake2b(data, digest_size=16).digest()
        known = self.unreadable.reason(digest)
        if known is not None:
            raise Unreadable(f"{known}; remembered, not read again")
        try:
            return self._session(data)
        except Unreadable as exc:
            self.unreadable.add(digest, str(exc))
            raise

    def _session(self, data: bytes) -> dict[str, Any]:
        if not data:
            raise Unreadable("empty value")
        flag, payload = data[0], data[1:]
        if flag & FLAG_COMPRESSED:
            if self.compression is None:
                raise Unreadable("compressed, and no COMPRESS_LIB given")
            try:
                payload = self.compression.decompress(payload, LIMITS.max_bytes)
            except Exception as exc:
                raise Unreadable(f"cannot decompress ({type(exc).__name__})") from None
        session = unpickle(payload)
        if not isinstance(session, dict):
            raise Unreadable(f"a {type(session).__name__}, not a session")
        return session

    def _parse_hash(self, data: bytes | None) -> Found | None:
        if data is None:
            return None
        if len(data) < 5:
            raise Unreadable("truncated value")
        return Found(self._payload(data[4:]), _EXPIRY.unpack_from(data)[0])

    def _call(self, key: str) -> Call[Found | None] | None:
        names = self._names(key)
        if names is None:
            return None
        if self.use_hash:
            return Call(("HGET", *names), lambda data: readable(self._parse_hash, data))
        return string_read(names[0], lambda data: Found(self._payload(data), None))

    def _delete_call(self, key: str) -> Call[None] | None:
        names = self._names(key)
        if names is None:
            return None
        return Call(("HDEL" if self.use_hash else "DEL", *names), lambda _: None)

    def read(self, key: str) -> Found | None:
        call = self._call(key)
        return None if call is None else self.reader.execute(call)

    async def aread(self, key: str) -> Found | None:
        call = self._call(key)
        return None if call is None else await self.reader.aexecute(call)

    def delete(self, key: str) -> None:
        call = self._delete_call(key)
        if call is not None:
            self.reader.execute(call)

    async def adelete(self, key: str) -> None:
        call = self._delete_call(key)
        if call is not None:
            await self.reader.aexecute(call)

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        raise BulkUnsupported(
            f"{self.name} keeps only KEY_GENERATOR(key) in Redis, with no prefix: session keys cannot be "
            f"recovered from it, nor its keys told from other data"
        )
