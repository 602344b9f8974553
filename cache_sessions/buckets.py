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
import time
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from . import lua
from .codec import CODEC_MASK, OVERFLOW, CorruptSession, overflow_pointer, read_header
from .storage import Sessions, reported

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache
    from django_redis.client import DefaultClient
    from redis.commands.core import Script

    from .conf import SessionOptions

SWEEP_ONE_WRITE_IN = 16  # a write sweeps its own bucket on average once every 16 writes...
SWEEP_FIELDS = 64  # ...looking at up to 64 fields: bounded work, amortised over writes
DEFAULT_INLINE_LIMIT = 64  # Redis's own default hash-max-listpack-value
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


def bucket_name(number: int) -> bytes:
    """``h{<hex>}``: each bucket is its own Cluster hash tag, shared only with its overflow keys."""
    return b"h{%x}" % number


class HashSessions(Sessions):
    def __init__(self, client: DefaultClient, backend: BaseCache, options: SessionOptions, namespace: str = "s"):
        super().__init__(client, backend, options, namespace)
        self.buckets = options.buckets
        self._inline_limit: int | None = options.hash_max_inline
        self._scripts: dict[str, Script] = {}
        self._last_located: tuple[str, tuple[bytes, bytes, bytes]] | None = None

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
        location = bucket, field, bucket + b":" + field
        self._last_located = key, location
        return location

    def default_buckets(self) -> bool:
        return self.options.hash_key_generator is None

    # Plumbing ------------------------------------------------------------

    def script(self, name: str) -> Script:
        """A registered script: EVALSHA, loaded once and re-sent on NOSCRIPT by redis-py."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis().register_script(getattr(lua, name))
        return script

    def run(self, name: str, keys: list[bytes], args: list[Any]) -> Any:
        """EVALSHA a script without redis-py's ``Script.__call__`` (~1.5 us of Python per call)."""
        script = self.script(name)
        redis = self.redis()
        try:
            return redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # the server restarted or ran SCRIPT FLUSH
            script.sha = redis.script_load(script.script)
            return redis.evalsha(script.sha, len(keys), *keys, *args)

    def inline_limit(self) -> int:
        """The largest value kept inside a bucket: the server's hash-max-listpack-value,
        read once per client (a later CONFIG SET is seen after a restart)."""
        if self._inline_limit is None:
            self._inline_limit = read_listpack_limits(self.redis())[1] or DEFAULT_INLINE_LIMIT
        return self._inline_limit

    # Operations (one round trip each)

    @reported
    def load(self, key: str) -> dict[str, Any] | None:
        bucket, field, overflow = self.locate(key)
        return self.decode(self.run("LOAD", [bucket, overflow], [field]))

    @reported
    def exists(self, key: str) -> bool:
        bucket, field, _ = self.locate(key)
        data = self.redis().hget(bucket, field)
        return data is not None and not _expired(data, time.time())

    def create(self, key: str, session: Mapping[str, Any], ttl: int) -> bool:
        """Store a new record; ``False`` if a live one has the key."""
        return self.write(key, session, ttl, CREATE)

    def update(self, key: str, session: Mapping[str, Any], ttl: int) -> bool:
        """Overwrite a live record; ``False`` if it is missing or expired (no resurrection)."""
        return self.write(key, session, ttl, UPDATE)

    @reported
    def write(self, key: str, session: Mapping[str, Any], ttl: int, mode: int) -> bool:
        """One WRITE script call; ``mode`` is ``CREATE``, ``UPDATE`` or ``UPSERT``."""
        if ttl <= 0:  # expired on arrival: never send a zero or negative TTL to a bucket
            if mode != CREATE:
                self.delete(key)
            return True
        sweep = SWEEP_FIELDS if random.randrange(SWEEP_ONE_WRITE_IN) == 0 else 0
        keys, args = self.write_call(key, session, ttl, mode, sweep)
        return bool(self.run("WRITE", keys, args))

    def write_call(
        self, key: str, session: Mapping[str, Any], ttl: int, mode: int, sweep: int = 0
    ) -> tuple[list[bytes], list[Any]]:
        """``(keys, args)`` of the WRITE script for a ``ttl`` > 0; usable on a pipeline too."""
        expires_at = min(int(time.time()) + ttl, MAX_EXPIRY)
        value = self.codec.encode(session, expires_at=expires_at)
        overflow_value = b""
        if len(value) > self.inline_limit():
            value, overflow_value = overflow_pointer(expires_at), value
        bucket, field, overflow = self.locate(key)
        return [bucket, overflow], [field, value, overflow_value, ttl, mode, sweep]

    @reported
    def delete(self, key: str) -> None:
        bucket, field, overflow = self.locate(key)
        self.run("DELETE", [bucket, overflow], [field])

    def clear_expired(self) -> None:
        """Sweep every bucket (``manage.py clearsessions``); see ``cleanuprs`` for options."""
        from .sweep import all_buckets, sweep

        sweep(self, all_buckets(self))

    def describe(self, key: str) -> dict[str, Any]:
        bucket, field, overflow = self.locate(key)
        redis = self.redis()
        value = redis.hget(bucket, field) or b""
        pointer = bool(value) and _is_pointer(value)
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


def _expired(data: bytes, now: float) -> bool:
    """Whether a stored value's expiry has passed (garbage is left to the decoder)."""
    try:
        expires_at = read_header(data)[2]
    except CorruptSession:
        return False
    return expires_at is not None and expires_at <= now


def _is_pointer(data: bytes) -> bool:
    return len(data) == 5 and data[0] & CODEC_MASK == OVERFLOW


def read_listpack_limits(redis: Any) -> tuple[int | None, int | None]:
    """``(hash-max-listpack-entries, hash-max-listpack-value)`` of a server, or
    ``(None, None)`` when CONFIG is disabled or renamed."""
    try:
        config = redis.config_get("hash-max-*")
    except ResponseError:
        return None, None
    entries = config.get("hash-max-listpack-entries", config.get("hash-max-ziplist-entries"))
    value = config.get("hash-max-listpack-value", config.get("hash-max-ziplist-value"))
    return (int(entries) if entries is not None else None), (int(value) if value is not None else None)
