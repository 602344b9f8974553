"""Hash mode: records as fields of bucket hashes, one round trip per operation.

A record (a session) with key ``k`` lives in the hash
``<namespace><HASH_KEY_GENERATOR(k)>`` (default ``h{<crc32(k) % BUCKETS, hex>}``)
under the field ``KEY_GENERATOR(k)`` (default: a 12-byte BLAKE2b digest of
``k``, so a copy of Redis does not even hold usable session keys). Small
hashes use Redis's compact listpack encoding, which costs far less memory
than one key per session. The value carries its absolute expiry (see
``codec.py``); the scripts in ``lua.py`` compare it with the Redis server's
clock, reads with the web server's. A value larger than the server's ``hash-max-listpack-value`` would
turn its whole bucket into a hashtable for good, so it is stored under an
overflow key ``<bucket>:<field>`` instead, with a 5-byte pointer in the
bucket.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from .. import errors
from ..errors import CorruptSession
from ..format.codec import is_overflow_pointer, overflow_pointer, read_header
from ..topology import async_clients, server_facts
from . import lua
from .base import Storage
from .calls import Call, answer, evalsha

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

    from ..topology.base import Topology
    from .options import SessionOptions

SWEEP_ONE_WRITE_IN = 16  # a write sweeps its own bucket on average once every 16 writes...
SWEEP_FIELDS = 64  # ...looking at up to 64 fields: bounded work, amortised over writes
UPDATE, CREATE, UPSERT = 0, 1, 2  # modes of the WRITE script
MAX_EXPIRY = 2**32 - 1  # the 4-byte expiry field: year 2106


def digest(key: str) -> bytes:
    """Default ``KEY_GENERATOR`` in hash mode: 12 bytes of BLAKE2b.

    96 bits, plus the ~14 that pick the bucket: no two live sessions share a
    field, and 4 bytes less per session than 16 (the memory goal is ~120 B).
    """
    return hashlib.blake2b(key.encode(), digest_size=12).digest()


def bucket_number(key: str, buckets: int) -> int:
    """A stable bucket number (CRC32, the same in every process; not ``hash()``)."""
    return zlib.crc32(key.encode()) % buckets


def bucket_name(number: int, marker: bytes = b"h") -> bytes:
    """``h{<hex>}``: each bucket is its own Cluster hash tag, shared only with its overflow
    keys (``u{<hex>}``: the buckets of the user index, ``index.py``)."""
    return marker + b"{%x}" % number


def overflow_key(bucket: bytes, field: bytes) -> bytes:
    """Where a session too big for its bucket lives (the scripts build the same name: lua.py)."""
    return bucket + b":" + field


BUCKET_NAME = re.compile(rb"h\{[0-9a-f]+\}")  # every name bucket_name() makes, and nothing else
BUCKET_GLOB = b"h{*}"  # the same for SCAN MATCH (which also finds overflow keys: filter with BUCKET_NAME)
USER_BUCKET_NAME = re.compile(rb"u\{[0-9a-f]+\}")  # bucket_name(n, b"u"): the buckets of the user index
USER_BUCKET_GLOB = b"u{*}"


class HashStorage(Storage):
    """Records (sessions, or the app records of ``SessionClient.bucket_*``) as fields of bucket hashes."""

    def __init__(
        self, client: Any, backend: BaseCache, options: SessionOptions, topology: Topology, namespace: str = "s"
    ) -> None:
        super().__init__(client, backend, options, topology, namespace)
        self.buckets = options.buckets
        self._last_located: tuple[str, tuple[bytes, bytes, bytes]] | None = None
        self._inline_limit: tuple[int, int] | None = None  # (server_facts.generation, limit)

    # Names ---------------------------------------------------------------

    def bucket(self, key: str) -> bytes:
        generator = self.options.hash_key_generator
        if generator is None:
            return self.prefix + bucket_name(bucket_number(key, self.buckets))
        return self.prefix + self.name(generator, key)

    def field(self, key: str) -> bytes:
        return self.name(self.options.key_generator or digest, key)

    def locate(self, key: str) -> tuple[bytes, bytes, bytes]:
        """``(bucket, field, overflow key)`` of a record (the last one is remembered:
        a request loads, then saves, the same session)."""
        last = self._last_located
        if last is not None and last[0] == key:
            return last[1]
        bucket, field = self.bucket(key), self.field(key)
        location = bucket, field, overflow_key(bucket, field)
        self._last_located = key, location
        return location

    def default_buckets(self) -> bool:
        return self.options.hash_key_generator is None

    def inline_limit(self) -> int:
        """The largest value kept inside a bucket: ``HASH_MAX_INLINE``, else the server's
        hash-max-listpack-value (read once per process and server)."""
        if self.options.hash_max_inline is not None:
            return self.options.hash_max_inline
        known = self._inline_limit
        if known is not None and known[0] == server_facts.generation:
            return known[1]  # kept: asking every server's facts again would cost every write
        with errors.translated():
            # Every server must keep the bucket compact: the smallest limit wins.
            limit = min(
                server_facts.listpack_limits(redis)[1] or server_facts.DEFAULT_INLINE_LIMIT for redis in self.servers()
            )
        self._inline_limit = (server_facts.generation, limit)
        return limit

    async def aprepare(self) -> None:
        """Read the servers' listpack limits with ``redis.asyncio`` (once per process and
        server), so that building a write never does blocking I/O on the loop."""
        if self.options.hash_max_inline is not None:
            return
        for redis in self.servers():
            if server_facts.of(redis).listpack_limits is None:
                try:
                    await server_facts.alistpack_limits(redis, self.aredis(redis))
                except async_clients.NotNative:
                    await sync_to_async(server_facts.listpack_limits)(redis)

    # Operations (one round trip each) --------------------------------------

    def load_call(self, key: str) -> Call[dict[str, Any] | None]:
        bucket, field, overflow = self.locate(key)

        def parse(data: bytes | None) -> dict[str, Any] | Call[dict[str, Any] | None] | None:
            if data is not None and is_overflow_pointer(data):  # a big session: a second round trip
                return Call(("GET", overflow), self.decode)
            return self.decode(data)

        return Call(("HGET", bucket, field), parse)

    def exists_call(self, key: str) -> Call[bool]:
        return self.alive_place_call(self.place(key))

    def place(self, key: str) -> tuple[bytes, ...]:
        return self.locate(key)[:2]

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        return Call(("HGET", *place), _alive)

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        bucket, field = place
        return evalsha(lua.DELETE, [bucket, overflow_key(bucket, field)], [field], bool)

    def create_call(self, key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        return self.write_call(key, session, ttl, CREATE)

    def update_call(self, key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        return self.write_call(key, session, ttl, UPDATE)

    def write(self, key: str, session: Mapping[str, Any], ttl: int, mode: int) -> bool:
        """One WRITE script call; ``mode`` is ``CREATE``, ``UPDATE`` or ``UPSERT``."""
        return self.execute(self.write_call(key, session, ttl, mode))

    def write_call(
        self, key: str, session: Mapping[str, Any], ttl: int, mode: int, sweep: int | None = None
    ) -> Call[bool]:
        """The WRITE script (``sweep``: fields to sweep; by default a random 1 in
        ``SWEEP_ONE_WRITE_IN`` writes sweeps ``SWEEP_FIELDS``)."""
        if ttl <= 0:  # expired on arrival: never send a zero or negative TTL to a bucket
            if mode == CREATE:
                return answer(True)
            bucket, field, overflow = self.locate(key)
            return evalsha(lua.DELETE, [bucket, overflow], [field], lambda _: True)
        if sweep is None:
            sweep = SWEEP_FIELDS if random.randrange(SWEEP_ONE_WRITE_IN) == 0 else 0
        now = int(time.time())
        expires_at = min(now + ttl, MAX_EXPIRY)
        value = self.codec.encode(session, expires_at=expires_at)
        overflow_value = b""
        if len(value) > self.inline_limit():
            value, overflow_value = overflow_pointer(expires_at), value
        bucket, field, overflow = self.locate(key)
        return evalsha(lua.WRITE, [bucket, overflow], [field, value, overflow_value, ttl, mode, sweep, now], bool)

    def describe(self, key: str) -> dict[str, Any]:
        bucket, field, overflow = self.locate(key)
        redis = self.redis_for(bucket)
        with errors.translated():
            value = bytes(redis.hget(bucket, field) or b"")  # type: ignore[arg-type]
            pointer = is_overflow_pointer(value)
            stored = redis.get(overflow) if pointer else value
            return {
                "mode": "hash",
                "key": bucket,
                "field": field,
                "overflow_key": overflow if pointer else None,
                "ttl": redis.ttl(overflow if pointer else bucket),
                "bytes": len(stored or b""),
                "bucket_fields": redis.hlen(bucket),
                "bucket_encoding": redis.object("encoding", bucket),
            }


def _alive(data: bytes | None) -> bool:
    """Whether a stored value exists and its expiry has not passed (garbage counts as
    existing: the decoder will report it)."""
    if data is None:
        return False
    try:
        expires_at = read_header(data)[2]
    except CorruptSession:
        return True
    return expires_at is None or expires_at > time.time()
