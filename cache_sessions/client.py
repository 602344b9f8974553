"""``SessionClient``: django-redis's ``DefaultClient`` plus bucketed records.

Set it as ``OPTIONS["CLIENT_CLASS"]`` (``cache_sessions.cache.RedisCache``
does that for you). Every ordinary cache method is django-redis's, untouched,
and building the client reads no session option: the session storage of an
alias (``storage/registry.py``) is made when sessions first use it, so a session
option can never break the cache. The ``bucket_*`` methods give app code the
same bucketed hash storage for small records of its own, kept apart from
sessions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from django_redis.client import DefaultClient

from .storage.buckets import CREATE, UPDATE, UPSERT, HashStorage
from .storage.options import SessionOptions
from .storage.registry import topology_of

MAX_RECORD_KEY_LENGTH = 1024


class SessionClient(DefaultClient):
    @cached_property
    def records(self) -> HashStorage:
        """Bucketed storage for app records, under ``<KEY_PREFIX>:r<VERSION>:``."""
        options = SessionOptions.from_options(self._options).for_records()
        return HashStorage(self, self._backend, options, topology_of(self, options), namespace="r")

    def bucket_get(self, key: str, default: Any = None) -> Any:
        """The live record stored under ``key`` (a dict), or ``default``."""
        record = self.records.load(_record_key(key))
        return default if record is None else record

    def bucket_set(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Store ``value`` (a msgpack-able mapping) for ``timeout`` seconds, replacing any record.

        ``True`` when stored; a ``timeout`` <= 0 deletes the record and gives ``False``."""
        return self._write(key, value, timeout, UPSERT)

    def bucket_add(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Store ``value`` only if no live record has ``key``; ``True`` if stored."""
        return self._write(key, value, timeout, CREATE)

    def bucket_replace(self, key: str, value: Mapping[str, Any], timeout: float) -> bool:
        """Overwrite a live record only (an expired or deleted one stays gone); ``True`` if stored."""
        return self._write(key, value, timeout, UPDATE)

    def bucket_exists(self, key: str) -> bool:
        """Whether a live record has ``key``."""
        return self.records.exists(_record_key(key))

    def bucket_delete(self, key: str) -> None:
        """Remove the record (and its overflow key, if it has one)."""
        self.records.delete(_record_key(key))

    def _write(self, key: str, value: Mapping[str, Any], timeout: float, mode: int) -> bool:
        key = _record_key(key)
        if not isinstance(value, Mapping):
            raise TypeError(f"a bucket record is a mapping (a dict), not {type(value).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise TypeError(f"timeout must be a number of seconds > 0, not {timeout!r} (records always expire)")
        ttl = -int(-timeout // 1)  # whole seconds, rounded up: 0.5 s lives 1 s
        stored = self.records.write(key, value, ttl, mode)
        return stored and ttl > 0


def _record_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a bucket record key is a non-empty str, not {key!r}")
    if len(key) > MAX_RECORD_KEY_LENGTH:
        raise ValueError(f"a bucket record key is at most {MAX_RECORD_KEY_LENGTH} characters")
    return key
