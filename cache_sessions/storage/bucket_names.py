"""The names of hash mode's keys, written here once: which bucket a record's key falls in,
its field there, the overflow key of a record too big for its bucket, and the patterns
that tell a bucket's name from any other key (sweeps, statistics, checks).

Bucket names carry a Redis Cluster hash tag (``h{<hex>}``), which their overflow keys
share, so a record and its overflow key are always in one slot. The user index's
buckets use the same scheme with the marker ``u`` (``index.py``).
"""

from __future__ import annotations

import hashlib
import re
import zlib


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
