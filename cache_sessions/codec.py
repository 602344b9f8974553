"""The byte format of a stored session: self-describing, versioned, no pickle.

Every value starts with one header byte::

    bit 7..4   format version (currently 1)
    bit 3      an absolute expiry follows (4 bytes, big-endian Unix seconds)
    bit 2..0   compression codec of the payload (see CODECS)

then the optional expiry, then the payload: a msgpack map, compressed or not.
Because the header names the codec, changing ``COMPRESS_LIB`` or
``COMPRESS_MIN_LENGTH`` never makes stored sessions unreadable, and bytes
that do not follow the format are rejected with ``CorruptSession`` instead of
being guessed at.
"""

from __future__ import annotations

import datetime
import importlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

FORMAT_VERSION = 1
HAS_EXPIRY = 0x08
CODEC_MASK = 0x07
_EXPIRY = struct.Struct(">I")


class CorruptSession(ValueError):
    """Stored bytes are not a session this codec can read."""


class UnencodableSession(TypeError):
    """A session value has a type msgpack cannot store."""


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def decompress(self, data: bytes, /) -> bytes: ...


@dataclass(frozen=True)
class CodecSpec:
    id: int
    module: str


# Codec ids are written into stored values: never renumber them.
CODECS: dict[str, CodecSpec] = {
    "": CodecSpec(0, ""),
    "snappy": CodecSpec(1, "snappy"),
    "zlib": CodecSpec(2, "zlib"),
    "lzma": CodecSpec(3, "lzma"),
    "lz4": CodecSpec(4, "lz4.frame"),
    "zstd": CodecSpec(5, "zstandard"),
}
CUSTOM_CODEC_ID = 7  # whatever COMPRESS_LIB names when it is a dotted path


def load_compressor(name: str) -> tuple[int, Compressor | None]:
    """Resolve a ``COMPRESS_LIB`` value to ``(codec id, compressor)``.

    ``name`` is one of ``CODECS`` or a dotted path to a module, class or
    object with ``compress``/``decompress``. Raises ``ImportError`` or
    ``TypeError`` with a readable message.
    """
    spec = CODECS.get(name)
    if spec is not None:
        if not spec.module:
            return spec.id, None
        return spec.id, importlib.import_module(spec.module)
    from django.utils.module_loading import import_string

    try:
        target: Any = importlib.import_module(name)
    except ImportError:
        target = import_string(name)
    if isinstance(target, type):
        target = target()
    if not (callable(getattr(target, "compress", None)) and callable(getattr(target, "decompress", None))):
        raise TypeError(f"{name!r} has no compress()/decompress() functions")
    return CUSTOM_CODEC_ID, target


def _default(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} values")


class Codec:
    """Turns a session dict into header + msgpack (+ compression), and back."""

    def __init__(self, compress_lib: str = "snappy", min_length: int = 400) -> None:
        self.codec_id, self.compressor = load_compressor(compress_lib)
        self.min_length = min_length
        self._packer = msgpack.Packer(default=_default, datetime=True, use_bin_type=True)
        self._decompressors: dict[int, Callable[[bytes], bytes]] = {}
        if self.compressor is not None:
            self._decompressors[self.codec_id] = self.compressor.decompress

    def encode(self, session: Mapping[str, Any], expires_at: int | None = None) -> bytes:
        try:
            payload = self._packer.pack(session)
        except (TypeError, ValueError, OverflowError) as exc:
            self._packer.reset()
            raise UnencodableSession(_explain(session, exc)) from exc
        codec_id = 0
        if self.compressor is not None and len(payload) >= self.min_length:
            compressed = self.compressor.compress(payload)
            if len(compressed) < len(payload):
                payload, codec_id = compressed, self.codec_id
        header = FORMAT_VERSION << 4 | codec_id
        if expires_at is None:
            return bytes((header,)) + payload
        return bytes((header | HAS_EXPIRY,)) + _EXPIRY.pack(expires_at) + payload

    def decode(self, data: bytes) -> tuple[dict[str, Any], int | None]:
        """Return ``(session dict, absolute expiry or None)``.

        Raises ``CorruptSession`` for anything that is not a value we wrote.
        """
        if not data:
            raise CorruptSession("empty value")
        header = data[0]
        if header >> 4 != FORMAT_VERSION:
            raise CorruptSession(f"unknown format version {header >> 4}")
        start, expires_at = 1, None
        if header & HAS_EXPIRY:
            if len(data) < 5:
                raise CorruptSession("truncated expiry")
            (expires_at,) = _EXPIRY.unpack_from(data, 1)
            start = 5
        payload = memoryview(data)[start:]
        codec_id = header & CODEC_MASK
        try:
            if codec_id:
                payload = self._decompressor(codec_id)(bytes(payload))
            session = msgpack.unpackb(payload, timestamp=3, strict_map_key=False)
        except CorruptSession:
            raise
        except Exception as exc:  # every decompressor and msgpack has its own errors
            raise CorruptSession(f"undecodable payload ({type(exc).__name__}: {exc})") from exc
        if not isinstance(session, dict):
            raise CorruptSession(f"payload is a {type(session).__name__}, not a map")
        return session, expires_at

    def _decompressor(self, codec_id: int) -> Callable[[bytes], bytes]:
        try:
            return self._decompressors[codec_id]
        except KeyError:
            pass
        name = next((n for n, spec in CODECS.items() if spec.id == codec_id), None)
        if name is None:
            raise CorruptSession(f"codec {codec_id} is not the configured COMPRESS_LIB")
        try:
            _, compressor = load_compressor(name)
        except ImportError as exc:
            raise CorruptSession(f"value is compressed with {name!r}, which is not installed") from exc
        assert compressor is not None
        self._decompressors[codec_id] = compressor.decompress
        return compressor.decompress


def _explain(session: Mapping[str, Any], exc: Exception) -> str:
    """Name the session entry msgpack could not store."""
    packer = msgpack.Packer(default=_default, datetime=True, use_bin_type=True)
    for key, value in session.items():
        try:
            packer.pack(value)
        except (TypeError, ValueError, OverflowError) as inner:
            hint = ""
            if isinstance(value, datetime.datetime) and value.tzinfo is None:
                hint = " (naive datetimes cannot be stored: use an aware one or isoformat())"
            return f"session[{key!r}] cannot be stored: {inner}{hint}"
    return f"session cannot be stored: {exc}"
