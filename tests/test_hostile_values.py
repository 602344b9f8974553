"""Hostile bytes in Redis (whoever can write to Redis can plant them) cost a load
bounded time and memory: they load as an empty session with a warning.

Values follow ``cache_sessions/codec.py``: a header byte (format << 4 |
has-expiry 0x08 | codec: 1 snappy, 2 zlib), an optional 4-byte expiry, then the
compressed msgpack payload. Each is built in a few MB, without ever holding
its decompressed size, and loaded in a subprocess under a memory cap
(``tests/support/measured_load.py``).
"""

from __future__ import annotations

import functools
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import msgpack
import pytest
import snappy
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.testing import RedisServer
from tests.support.fault_servers import sessions_on

pytestmark = pytest.mark.django_db(databases=[])

COMPACT, HAS_EXPIRY, SNAPPY, ZLIB = 2 << 4, 0x08, 1, 2
MIB, GIB = 1 << 20, 1 << 30
HEADROOM = 256 * MIB  # what a load may allocate before the subprocess gets MemoryError
# What a bounded load may cost. Generous: the limit the refactor picks is "a few MiB".
MAX_SECONDS, MAX_GROWTH_MIB = 2.0, 64


def deflated_zeros(size: int, prefix: bytes = b"") -> bytes:
    """A valid zlib stream of ``prefix`` + ``size`` zero bytes (~1/1000 of ``size``; whole MiBs)."""
    assert size % MIB == 0
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9)
    head = compressor.compress(prefix + chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    # A full flush resets the compressor's history, so every further chunk compresses to the same bytes.
    unit = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)[:-4]  # the final block, less the checksum of what it saw
    checksum = zlib.adler32(prefix)
    for _ in range(size // MIB):
        checksum = zlib.adler32(chunk, checksum)
    return head + unit * (size // MIB - 1) + tail + struct.pack(">I", checksum)


def snappy_zeros(size: int, prefix: bytes = b"") -> bytes:
    """Raw snappy of ``prefix`` + ``size`` zero bytes (~1/21 of ``size``): a literal, then 64-byte copies."""
    assert len(prefix) < 60 and size > 0
    varint, n = bytearray(), len(prefix) + size
    while n >= 0x80:
        varint.append(n & 0x7F | 0x80)
        n >>= 7
    varint.append(n)

    def copy(length: int) -> bytes:  # tag 0b10: copy ``length`` (1-64) bytes from 1 byte back
        return bytes(((length - 1) << 2 | 2,)) + (1).to_bytes(2, "little")

    literal = bytes((len(prefix) << 2,)) + prefix + b"\x00"  # tag 0b00: len(prefix) + 1 bytes follow
    full, part = divmod(size - 1, 64)
    return bytes(varint) + literal + copy(64) * full + (copy(part) if part else b"")


def blob_head(size: int) -> bytes:
    """The msgpack bytes that begin ``{"blob": <size bytes>}``."""
    return b"\x81\xa4blob\xc6" + size.to_bytes(4, "big")


def empty_maps(count: int) -> bytes:
    """msgpack of ``{"x": [{}, {}, ...]}`` with ``count`` empty maps."""
    return b"\x81\xa1x\xdd" + count.to_bytes(4, "big") + b"\x80" * count


# name -> stored value (header byte, then the payload)
HOSTILE = {
    # 1 MB of zlib that inflates to 1 GiB of zeros (not even msgpack)
    "zlib-bomb": lambda: bytes((COMPACT | ZLIB,)) + deflated_zeros(GIB),
    # a well-formed session {"blob": 1 GiB of zeros}, 1 MB of zlib
    "zlib-session-of-1-GiB": lambda: bytes((COMPACT | ZLIB,)) + deflated_zeros(GIB, blob_head(GIB)),
    # the same in the default codec, {"blob": 256 MiB}, 12 MB of snappy
    "snappy-session-of-256-MiB": lambda: bytes((COMPACT | SNAPPY,)) + snappy_zeros(256 * MIB, blob_head(256 * MIB)),
    # 10 MB of msgpack that makes 10M Python dicts, 10 KB of zlib
    "10M-empty-maps": lambda: bytes((COMPACT | ZLIB,)) + zlib.compress(empty_maps(10_000_000), 9),
}


@pytest.fixture(scope="module")
def server():
    with RedisServer() as server:
        yield server


def with_expiry(value: bytes) -> bytes:
    """The same value as hash mode stores it: the expiry follows the header."""
    return bytes((value[0] | HAS_EXPIRY,)) + struct.pack(">I", int(time.time()) + 3600) + value[1:]


@functools.cache
def hostile(name: str) -> bytes:
    return HOSTILE[name]()


def plant(server: RedisServer, use_hash: bool, value: bytes) -> str:
    """Store ``value`` raw where a new session's key points; that key."""
    with sessions_on(server.url, use_hash=use_hash):
        session = SessionStore()
        session["x"] = 1
        session.save()
        redis = Redis(port=server.port)
        if use_hash:
            bucket, field, _ = session._storage.locate(session.session_key)
            redis.hset(bucket, field, with_expiry(value))
        else:
            redis.set(session._storage.locate(session.session_key)[0], value)
    return session.session_key


def measured_load(server: RedisServer, use_hash: bool, key: str) -> dict:
    spec = {"location": server.url, "use_hash": use_hash, "key": key, "headroom": HEADROOM}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.measured_load", json.dumps(spec)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "use_hash, value",
    [
        *[pytest.param(False, name, id=f"string-{name}") for name in HOSTILE],
        pytest.param(True, "snappy-session-of-256-MiB", id="hash-snappy-session-of-256-MiB"),
    ],
)
def test_hostile_value_loads_as_an_empty_session_in_bounded_time_and_memory(server, use_hash, value):
    result = measured_load(server, use_hash, plant(server, use_hash, hostile(value)))
    assert "error" not in result, result
    assert result["entries"] == 0 and not result["key_kept"], result  # an empty session: the user gets a new one
    assert result["warnings"], result  # on django.security.SuspiciousSession
    assert result["seconds"] < MAX_SECONDS, result
    assert result["peak_growth_mib"] < MAX_GROWTH_MIB, result


def test_an_ordinary_session_measures_small(server):
    """The measurement itself: an ordinary session loads whole, in little time and memory."""
    with sessions_on(server.url, use_hash=False):
        session = SessionStore()
        session.update({"_auth_user_id": "1", "notes": "x" * 5000})
        session.save()
    result = measured_load(server, False, session.session_key)
    assert result["entries"] == 2 and result["key_kept"] and not result["warnings"], result
    assert result["seconds"] < MAX_SECONDS and result["peak_growth_mib"] < MAX_GROWTH_MIB, result


def test_the_builders_make_what_they_claim():
    """Checked with the real decompressors and msgpack, at small sizes."""
    assert zlib.decompress(deflated_zeros(3 * MIB, b"head")) == b"head" + bytes(3 * MIB)  # checksum included
    for size in (1, 64, 65, 1000):
        assert snappy.uncompress(snappy_zeros(size, b"head")) == b"head" + bytes(size)
    assert msgpack.unpackb(blob_head(3) + bytes(3)) == {"blob": bytes(3)}
    assert msgpack.unpackb(empty_maps(3)) == {"x": [{}, {}, {}]}
    assert all(len(hostile(name)) < 16 * MIB for name in HOSTILE)
