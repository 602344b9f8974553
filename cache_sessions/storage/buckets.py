"""Hash mode: records as fields of bucket hashes, one round trip per operation.

A record (a session) with key ``k`` lives in the hash
``<namespace><HASH_KEY_GENERATOR(k)>`` (default ``h{<crc32(k) % BUCKETS, hex>}``)
under the field ``KEY_GENERATOR(k)`` (default: a 12-byte BLAKE2b digest of
``k``, so a copy of Redis does not even hold usable session keys). Small
hashes use Redis's compact listpack encoding, which costs far less memory
than one key per session. Where the server keeps hashes with field TTLs
compact (Redis 8, ``FIELD_TTL``), each field carries its own TTL and writes
are plain commands (``field_ttls.py``); elsewhere the value carries its
absolute expiry (see ``codec.py``), which the scripts in ``lua.py`` compare
with the Redis server's clock. Reads judge both kinds (a value with an expiry
in its header, with the web server's clock). A value larger than the server's ``hash-max-listpack-value`` would
turn its whole bucket into a hashtable for good, so it is stored under an
overflow key ``<bucket>:<field>`` instead, with a 5-byte pointer in the
bucket.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import errors
from ..errors import CorruptSession
from ..format.codec import is_overflow_pointer, overflow_pointer, read_header
from ..topology import server_facts
from . import field_ttls, lua
from .base import Storage
from .bucket_names import bucket_name, bucket_number, digest, overflow_key
from .calls import Call, answer, evalsha
from .field_ttls import CREATE as CREATE
from .field_ttls import UPDATE as UPDATE
from .field_ttls import UPSERT as UPSERT

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

    from ..topology.base import Topology
    from .options import SessionOptions

SWEEP_ONE_WRITE_IN = 16  # a write sweeps its own bucket on average once every 16 writes...
SWEEP_FIELDS = 64  # ...looking at up to 64 fields: bounded work, amortised over writes
# A load also fetches the overflow key in its round trip when overflow is likely: when the
# bucket's limit is below this many bytes (a logged-in session with a few entries is 80-250),
# or when at least this share of this process's recent loads met a pointer.
OVERFLOW_LIKELY_BELOW = 128
OVERFLOW_LIKELY_SHARE = 1 / 16
RECENT_LOADS = 32  # the weight of one load in that share (an exponential moving average)
MAX_EXPIRY = 2**32 - 1  # the 4-byte expiry field: year 2106
# (session key, the expiry in the header of the value its last load found, or None): what a
# request (a thread, or an asyncio task) loaded, for its save (``field_ttl_write_call``).
loaded_expiry: ContextVar[tuple[str, int | None] | None] = ContextVar("cache_sessions_loaded_expiry", default=None)


class HashStorage(Storage):
    """Records (sessions, or the app records of ``SessionClient.bucket_*``) as fields of bucket hashes."""

    def __init__(
        self, client: Any, backend: BaseCache, options: SessionOptions, topology: Topology, namespace: str = "s"
    ) -> None:
        super().__init__(client, backend, options, topology, namespace)
        self.buckets = options.buckets
        self._last_located: tuple[str, tuple[bytes, bytes, bytes]] | None = None
        self._field_ttls: tuple[int, bool] | None = None  # (server_facts.generation, whether writes use them)
        self.pointer_share = 0.0  # of this process's recent loads, those that met a pointer

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

    def needs_limits(self) -> bool:
        return self.options.hash_max_inline is None

    def needs_software(self) -> bool:
        return self.options.field_ttl is not False

    def field_ttls(self) -> bool:
        """Whether writes give each field its own TTL (``field_ttls.py``): ``FIELD_TTL``, by
        default wherever every server keeps such buckets compact (Redis 8.0+; the software
        is read once per process and server)."""
        forced = self.options.field_ttl
        if forced is False:
            return False
        known = self._field_ttls
        if known is not None and known[0] == server_facts.generation:
            return known[1]
        with errors.translated():
            use = all(server_facts.field_ttls(redis, forced) for redis in self.servers())
        self._field_ttls = (server_facts.generation, use)
        return use

    def learnt(self, records: list[server_facts.ServerFacts], generation: int) -> None:
        super().learnt(records, generation)
        if records:
            uses = [server_facts.known_field_ttls(facts, self.options.field_ttl) for facts in records]
            if None not in uses:
                self._field_ttls = (generation, all(uses))

    # Operations (one round trip each) --------------------------------------

    def load_call(self, key: str) -> Call[dict[str, Any] | None]:
        """``HGET``, and in the same round trip the ``GET`` of the overflow key when overflow is
        likely here (``overflow_likely``); else a pointer costs a second round trip."""
        bucket, field, overflow = self.locate(key)

        def parse(data: bytes | None) -> dict[str, Any] | Call[dict[str, Any] | None] | None:
            if data is not None and self._seen(key, data):  # a big session: a second round trip
                return Call(("GET", overflow), self.decode, on=bucket)
            return self.decode(data)

        def parse_both(replies: list[bytes | None]) -> dict[str, Any] | None:
            data, overflowed = replies
            if data is not None and self._seen(key, data):
                return self.decode(overflowed)
            return self.decode(data)

        if self.overflow_likely():
            return Call(("HGET", bucket, field), parse_both, more=(("GET", overflow),))
        return Call(("HGET", bucket, field), parse)

    def overflow_likely(self) -> bool:
        """Whether a load should fetch the overflow key with the field: the bucket's limit is
        small (a stock server's 64 bytes) or not known yet (no I/O here: a write or ``aprepare``
        learns it), or this process's recent loads met pointers often."""
        limit = self.known_inline_limit()
        return limit is None or limit < OVERFLOW_LIKELY_BELOW or self.pointer_share >= OVERFLOW_LIKELY_SHARE

    def known_inline_limit(self) -> int | None:
        """``inline_limit()`` if it needs no round trip (every server's limits already read)."""
        if self.options.hash_max_inline is not None:
            return self.options.hash_max_inline
        known = self._inline_limit
        if known is not None and known[0] == server_facts.generation:
            return known[1]
        records = self.topology.known_facts()  # no I/O: None for a cluster not discovered on sync
        if not records or any(facts.listpack_limits is None for facts in records):
            return None
        return self.inline_limit()

    def _seen(self, key: str, data: bytes) -> bool:
        """Whether a value a load found is a pointer; counted in ``pointer_share``, and the
        expiry in its header remembered for this request's save (``loaded_expiry``)."""
        pointer = is_overflow_pointer(data)
        self.pointer_share += ((1.0 if pointer else 0.0) - self.pointer_share) / RECENT_LOADS
        loaded_expiry.set((key, field_ttls.header_expiry(data)))
        return pointer

    def exists_call(self, key: str) -> Call[bool]:
        return self.alive_place_call(self.place(key))

    def place(self, key: str) -> tuple[bytes, ...]:
        return self.locate(key)[:2]

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        return Call(("HGET", *place), _alive)

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        bucket, field = place
        if self.field_ttls():
            return field_ttls.delete(bucket, field, overflow_key(bucket, field))
        return evalsha(lua.DELETE, [bucket, overflow_key(bucket, field)], [field], bool)

    def create_call(self, key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        return self.write_call(key, session, ttl, CREATE)

    def update_call(self, key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        return self.write_call(key, session, ttl, UPDATE)

    def write(self, key: str, session: Mapping[str, Any], ttl: int, mode: int) -> bool:
        """One write; ``mode`` is ``CREATE``, ``UPDATE`` or ``UPSERT``."""
        return self.execute(self.write_call(key, session, ttl, mode))

    def write_call(
        self, key: str, session: Mapping[str, Any], ttl: int, mode: int, sweep: int | None = None
    ) -> Call[bool]:
        """A write with field TTLs (``field_ttls.write``) where the servers keep them compact,
        else the WRITE script (``sweep``: fields to sweep; by default a random 1 in
        ``SWEEP_ONE_WRITE_IN`` writes sweeps ``SWEEP_FIELDS``)."""
        if ttl <= 0:  # expired on arrival: never send a zero or negative TTL to a bucket
            if mode == CREATE:
                return answer(True)
            delete = self.delete_place_call(self.place(key))
            return Call(delete.args, lambda _: True, delete.script, more=delete.more)
        if self.field_ttls():
            return self.field_ttl_write_call(key, session, ttl, mode)
        return self.script_write_call(key, session, ttl, mode, sweep)

    def script_write_call(
        self, key: str, session: Mapping[str, Any], ttl: int, mode: int, sweep: int | None = None
    ) -> Call[bool]:
        """The WRITE script: the expiry in the value's header, the bucket's TTL raised."""
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

    def field_ttl_write_call(self, key: str, session: Mapping[str, Any], ttl: int, mode: int) -> Call[bool]:
        """``field_ttls.write``; a server that turns out not to know HSETEX (a failover to an
        older replica) gets the WRITE script instead, and this process stops sending it HSETEX."""
        now = int(time.time())
        ttl = min(ttl, MAX_EXPIRY - now)  # the pointer's 4-byte expiry, and Redis's own bound on field TTLs
        value = self.codec.encode(session)  # no expiry in the header: the field's TTL says it
        pointer = overflow_pointer(now + ttl) if len(value) > self.inline_limit() else None
        bucket, field, overflow = self.locate(key)
        if mode == UPDATE and (loaded := loaded_expiry.get()) is not None and loaded[0] == key:
            loaded_expiry.set(None)
            if loaded[1] is not None and loaded[1] <= time.time():
                # A value of the script layout that expired since this request loaded it: HSETEX FXX
                # knows nothing of its header, so it is removed and the save refused here, as the
                # script would.
                delete = field_ttls.delete(bucket, field, overflow)
                return Call(delete.args, lambda _: False, more=delete.more, on=bucket)
        # A create refused by a leftover the script layout wrote (its expiry in its header,
        # unswept): the script replaces it, as it would have (the rare case of a key chosen by
        # the app, an app record's: session keys are random).
        leftover = partial(self.script_write_call, key, session, ttl, mode, 0)
        call = field_ttls.write(bucket, field, overflow, value, pointer, ttl, mode, leftover)

        def without_hsetex() -> Call[bool]:
            self.topology.facts_for(bucket).hsetex_refused = True  # for every storage of the server
            self._field_ttls = (server_facts.generation, False)
            return self.write_call(key, session, ttl, mode)

        call.fallback, call.fallback_on = without_hsetex, "unknown command"
        return call

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
                "field_ttl": redis.httl(bucket, field)[0] if self.field_ttls() else None,
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
