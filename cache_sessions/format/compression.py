"""Compression of stored sessions: codec ids, loading ``COMPRESS_LIB``, and
decompression that never produces more than a given number of bytes.

A stored value names its codec in its header (``codec.py``), so a reader
needs every codec a writer may have used, not only the configured one. Each
built-in codec decompresses with a cap: a value whose output would pass it
is refused before (snappy, zstd: the size is in the stream) or while (zlib,
lzma, lz4: bounded streaming) it is inflated, so a hostile value in Redis
cannot make a web process allocate gigabytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.utils.module_loading import import_string

Decompress = Callable[[bytes, int], bytes]
"""``(data, limit) -> bytes``; raises ``Oversized`` for output over ``limit`` bytes, anything else for bad input."""


class Oversized(ValueError):
    """The payload decompresses to more than the allowed number of bytes."""


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def decompress(self, data: bytes, /) -> bytes: ...


@dataclass(frozen=True)
class Compression:
    id: int
    compress: Callable[[bytes], bytes]
    decompress: Decompress


Functions = tuple[Callable[[bytes], bytes], Decompress]


# Each loader imports its library when COMPRESS_LIB names it, not before: lz4 and zstandard are
# optional packages, and an alias that never compresses with one must not need it.


def _snappy() -> Functions:
    import snappy

    def decompress(data: bytes, limit: int) -> bytes:
        # Raw snappy starts with the uncompressed length as a little-endian varint.
        length = shift = 0
        for index, byte in enumerate(data[:5]):
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if index == 4:
                raise ValueError("bad snappy length")
        if length > limit:
            raise Oversized(length)
        return bytes(snappy.uncompress(data))

    return snappy.compress, decompress


def _capped(inflater: Any, data: bytes, limit: int) -> bytes:
    """Inflate with a streaming decompressor (zlib, lzma, lz4 frames), producing at most
    ``limit`` + 1 bytes: one byte more than allowed says the payload is too large."""
    out: bytes = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise Oversized(limit)
    if not inflater.eof:
        raise ValueError("truncated stream")
    return out


def _zlib() -> Functions:
    import zlib

    return zlib.compress, lambda data, limit: _capped(zlib.decompressobj(), data, limit)


def _lzma() -> Functions:
    import lzma

    # memlimit bounds the decoder's own tables (a hostile header can ask for GBs).
    return lzma.compress, lambda data, limit: _capped(lzma.LZMADecompressor(memlimit=128 << 20), data, limit)


def _lz4() -> Functions:
    import lz4.frame

    return lz4.frame.compress, lambda data, limit: _capped(lz4.frame.LZ4FrameDecompressor(), data, limit)


def _zstd() -> Functions:
    import zstandard

    def decompress(data: bytes, limit: int) -> bytes:
        # With the size in the frame header, max_output_size is not enforced: check it first.
        if zstandard.frame_content_size(data) > limit:
            raise Oversized(limit)
        out: bytes = zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
        return out

    return zstandard.compress, decompress


# COMPRESS_LIB name -> (codec id, loader). The ids are written into stored values: never renumber them.
BUILTIN: dict[str, tuple[int, Callable[[], Functions]]] = {
    "snappy": (1, _snappy),
    "zlib": (2, _zlib),
    "lzma": (3, _lzma),
    "lz4": (4, _lz4),
    "zstd": (5, _zstd),
}
NONE_ID = 0  # stored uncompressed
CUSTOM_ID = 7  # whatever COMPRESS_LIB names when it is a dotted path


def load(name: str) -> Compression | None:
    """The compression a ``COMPRESS_LIB`` value names; ``None`` for ``""`` (no compression).

    ``name`` is a built-in name or a dotted path to a module, class or object
    with ``compress``/``decompress``. Raises ``ImportError`` or ``TypeError``
    with a readable message.
    """
    if not name:
        return None
    if name in BUILTIN:
        return builtin(name)
    target: Any
    try:
        target = importlib.import_module(name)
    except ImportError:
        target = import_string(name)
    if isinstance(target, type):
        target = target()
    if not (callable(getattr(target, "compress", None)) and callable(getattr(target, "decompress", None))):
        raise TypeError(f"{name!r} has no compress()/decompress() functions")
    custom: Compressor = target

    def decompress(data: bytes, limit: int) -> bytes:
        # A custom library cannot be asked to stop early: its output is checked afterwards.
        out = custom.decompress(data)
        if len(out) > limit:
            raise Oversized(limit)
        return out

    return Compression(CUSTOM_ID, custom.compress, decompress)


def builtin(name: str) -> Compression:
    """A built-in compression by name (``ImportError`` when its library is not installed)."""
    codec_id, loader = BUILTIN[name]
    return Compression(codec_id, *loader())


def builtin_name(codec_id: int) -> str | None:
    """The name of the built-in codec with this id, if there is one."""
    return next((name for name, (known, _) in BUILTIN.items() if known == codec_id), None)
