"""The byte format of a stored session: self-describing, versioned, no pickle.

Every value starts with one header byte::

    bit 7..4   format: 1 = a msgpack map; 2 = a msgpack map compacted with
               the static tables of compact.py
    bit 3      an absolute expiry follows (4 bytes, big-endian Unix seconds)
    bit 2..0   compression codec of the payload (see CODECS); 6 = a pointer:
               the value lives under an overflow key (hash mode), only the
               expiry follows

then the optional expiry, then the payload, compressed or not. Because the
header names the format and the codec, changing ``COMPRESS_LIB`` or
``COMPRESS_MIN_LENGTH`` never makes stored sessions unreadable, and bytes
that do not follow the format are rejected with ``CorruptSession`` instead of
being guessed at. Decoding is bounded: a payload that is, or decompresses
to, more than ``max_size`` bytes is refused before it is unpacked.

Format 2 replaces the keys and values Django puts in every session with
indexes into static tables (``compact.py``).

The bytes are msgpack-python's (``msgpack.packb(..., use_bin_type=True,
datetime=True)``), read by msgspec, which is faster on large sessions.
msgspec also writes many values that msgpack refuses (naive datetimes and
dates as strings, Decimals, UUIDs, enums, dataclasses), which would load
back as something else, so it writes only sessions whose
top-level values are plain scalars (a logged-in session), where it makes the
same bytes many times faster; any other session is packed by msgpack, and refused
exactly as before. Checking nested values for msgspec costs about what it
saves.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Mapping
from typing import Any

import msgpack
import msgspec

from ..errors import CorruptSession, SessionTooLarge, UnencodableSession
from . import compression
from .compact import TableError, compact, expand, ext_hook
from .compression import Oversized

PLAIN, COMPACT = 1, 2  # format versions; both are read forever
HAS_EXPIRY = 0x08
CODEC_MASK = 0x07
OVERFLOW = 6  # in the codec bits: the value is stored under an overflow key
_EXPIRY = struct.Struct(">I")
DEFAULT_MAX_SIZE = 1 << 20  # MAX_SESSION_BYTES: msgpack bytes of one session, before compression


def _default(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if type(value) is msgspec.msgpack.Ext:  # format 2's own, in a session msgspec could not write
        return msgpack.ExtType(value.code, value.data)
    raise TypeError(f"cannot store {type(value).__name__} values")


_PACK_OPTIONS: dict[str, Any] = {"default": _default, "datetime": True, "use_bin_type": True}


def _no_ext(code: int, data: memoryview) -> Any:
    raise CorruptSession(f"unknown msgpack ext type {code} in format 1")


# Shared by every thread: msgspec keeps no state between calls. Timestamps (ext -1) load
# as aware UTC datetimes, map keys may be any msgpack value, and an array used as a key
# (a tuple or frozenset key) loads as a tuple.
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS = {PLAIN: msgspec.msgpack.Decoder(ext_hook=_no_ext), COMPACT: msgspec.msgpack.Decoder(ext_hook=ext_hook)}


def _pack(value: Any, plain: bool) -> tuple[bytes, bool]:
    """msgpack bytes of a session or its format-2 form, and whether a frozenset was packed (only
    then can two keys load as one); ``plain``: every top-level value is a plain scalar, which
    msgspec writes as msgpack does, and faster."""
    if plain:
        try:
            return _ENCODER.encode(value), False
        except (ValueError, OverflowError):  # an int beyond 64 bits, a lone surrogate: msgpack says why
            pass
    return _packb(value)


def _packb(session: Any) -> tuple[bytes, bool]:
    frozensets = False

    def default(value: Any) -> Any:
        nonlocal frozensets
        frozensets = frozensets or isinstance(value, frozenset)
        return _default(value)

    packed: bytes = msgpack.packb(session, **{**_PACK_OPTIONS, "default": default})
    return packed, frozensets


class Codec:
    """Turns a session dict into header + msgpack (+ compression), and back."""

    def __init__(self, compress_lib: str = "snappy", min_length: int = 400, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.compression = compression.load(compress_lib)
        self.codec_id = self.compression.id if self.compression else compression.NONE_ID
        self.min_length = min_length
        self.max_size = max_size
        self._decompressors: dict[int, compression.Decompress] = {}
        if self.compression is not None:
            self._decompressors[self.codec_id] = self.compression.decompress

    def encode(self, session: Mapping[str, Any], expires_at: int | None = None) -> bytes:
        compacted, plain = compact(session)
        try:
            payload, frozensets = _pack(session if compacted is None else compacted, plain)
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnencodableSession(_explain(session, exc)) from exc
        if frozensets:
            _refuse_merging_keys(session)
        if len(payload) > self.max_size:
            raise SessionTooLarge(
                f"The session is {len(payload):,} bytes of msgpack, over the limit of {self.max_size:,} "
                f"(OPTIONS['MAX_SESSION_BYTES']): keep large data in a database or a file store, "
                f"and its id in the session."
            )
        codec_id = 0
        if self.compression is not None and len(payload) >= self.min_length:
            compressed = self.compression.compress(payload)
            if len(compressed) < len(payload):
                payload, codec_id = compressed, self.codec_id
        header = (PLAIN if compacted is None else COMPACT) << 4 | codec_id
        if expires_at is None:
            return bytes((header,)) + payload
        return bytes((header | HAS_EXPIRY,)) + _EXPIRY.pack(expires_at) + payload

    def decode(self, data: bytes) -> tuple[dict[str, Any], int | None]:
        """Return ``(session dict, absolute expiry or None)``.

        Raises ``CorruptSession`` for anything that is not a value we wrote,
        and for payloads over ``max_size`` bytes once decompressed.
        """
        version, codec_id, expires_at, start = read_header(data)
        if codec_id == OVERFLOW:
            raise CorruptSession("an overflow pointer, not a session")
        payload: bytes | memoryview = memoryview(data)[start:]
        try:
            if codec_id:
                payload = self._decompressor(codec_id)(bytes(payload), self.max_size)
            elif len(payload) > self.max_size:
                raise Oversized(self.max_size)
            session = _DECODERS[version].decode(payload)
        except (CorruptSession, TableError) as exc:
            raise CorruptSession(str(exc)) from None
        except Oversized:
            raise CorruptSession(f"payload over {self.max_size:,} bytes (MAX_SESSION_BYTES)") from None
        except Exception as exc:  # every decompressor and msgpack has its own errors
            raise CorruptSession(f"undecodable payload ({type(exc).__name__}: {exc})") from exc
        if not isinstance(session, dict):
            raise CorruptSession(f"payload is a {type(session).__name__}, not a map")
        try:
            return (expand(session) if version == COMPACT else session), expires_at
        except TableError as exc:
            raise CorruptSession(str(exc)) from None

    def _decompressor(self, codec_id: int) -> compression.Decompress:
        try:
            return self._decompressors[codec_id]
        except KeyError:
            pass
        name = compression.builtin_name(codec_id)
        if name is None:
            raise CorruptSession(f"codec {codec_id} is not the configured COMPRESS_LIB")
        try:
            decompress = compression.builtin(name).decompress
        except ImportError as exc:
            raise CorruptSession(f"value is compressed with {name!r}, which is not installed") from exc
        self._decompressors[codec_id] = decompress
        return decompress


def read_header(data: bytes) -> tuple[int, int, int | None, int]:
    """``(format version, codec id, expiry or None, payload offset)`` of a stored value."""
    if not data:
        raise CorruptSession("empty value")
    header = data[0]
    version = header >> 4
    if version not in (PLAIN, COMPACT):
        raise CorruptSession(f"unknown format version {version}")
    if not header & HAS_EXPIRY:
        return version, header & CODEC_MASK, None, 1
    if len(data) < 5:
        raise CorruptSession("truncated expiry")
    return version, header & CODEC_MASK, _EXPIRY.unpack_from(data, 1)[0], 5


def overflow_pointer(expires_at: int) -> bytes:
    """What a bucket holds for a session stored under its overflow key."""
    return bytes((COMPACT << 4 | HAS_EXPIRY | OVERFLOW,)) + _EXPIRY.pack(expires_at)


def is_overflow_pointer(data: bytes) -> bool:
    """Whether a bucket value is a pointer to an overflow key (see ``lua.py`` for the same test in Lua)."""
    return len(data) == 5 and data[0] & CODEC_MASK == OVERFLOW


def _explain(session: Mapping[str, Any], exc: Exception) -> str:
    """Name the session entry msgpack could not store."""
    for key, value in session.items():
        try:
            msgpack.packb(value, **_PACK_OPTIONS)
        except (TypeError, ValueError, OverflowError) as inner:
            hint = ""
            if isinstance(value, datetime.datetime) and value.tzinfo is None:
                hint = " (naive datetimes cannot be stored: use an aware one or isoformat())"
            return f"session[{key!r}] cannot be stored: {inner}{hint}"
    return f"session cannot be stored: {exc}"


def _as_loaded(key: Any) -> Any:
    """A dict key as it loads back: tuples and frozensets, at any depth, as tuples."""
    if isinstance(key, (tuple, frozenset)):
        return tuple(_as_loaded(item) for item in key)
    return key


def _refuse_merging_keys(session: Mapping[Any, Any]) -> None:
    """``UnencodableSession`` if two keys of one dict in ``session`` would load as one (a frozenset
    and a tuple of the same items): loading would drop one of the two entries, silently."""
    todo: list[tuple[str, Any]] = [("session keys", session)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, dict):
            loaded: dict[Any, Any] = {}
            for key in value:
                first = loaded.setdefault(_as_loaded(key), key)
                if first is not key:
                    raise UnencodableSession(
                        f"{where} {first!r} and {key!r} would both load as {_as_loaded(key)!r} "
                        f"(a frozenset used as a key loads as a tuple, and one entry would be lost)"
                    )
            for key, item in value.items():
                todo.append((f"session[{key!r}] cannot be stored: its keys" if value is session else where, item))
        elif isinstance(value, (list, tuple)):
            todo.extend((where, item) for item in value)
