"""Pickles built to exhaust a reader: small inputs that describe huge, deep or cyclic data.

Each builder returns the bytes an attacker with write access to the old store
could plant (a session's payload, before redisession's flag byte). Used by
tests/test_pickled.py and tools/benchmarks/pickle_bombs.py.
"""

from __future__ import annotations

import struct


def _frame(protocol: int, body: bytes) -> bytes:
    return bytes((0x80, protocol)) + body + b"."


def _get(index: int) -> bytes:
    return b"h" + bytes((index,)) if index < 256 else b"j" + struct.pack("<I", index)


def _put(index: int) -> bytes:
    return b"q" + bytes((index,)) if index < 256 else b"r" + struct.pack("<I", index)


def _key(text: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text  # BINUNICODE


def memo_doubling(levels: int, protocol: int = 2) -> bytes:
    """``{"x": L(levels)}`` where ``L(0) = []`` and ``L(i+1) = [L(i), L(i)]``: 2**levels leaves,
    ~9 bytes a level, every list but the first fetched from the memo."""
    body = b"}" + _put(0) + b"]" + _put(1)
    for level in range(1, levels + 1):
        body += b"]" + _put(level + 1) + b"(" + _get(level) + _get(level) + b"e"
    body += _get(0) + _key(b"x") + _get(levels + 1) + b"s"
    return _frame(protocol, body)


def memo_doubling_memoize(levels: int) -> bytes:
    """The same on protocol 4, with ``MEMOIZE`` (indexes counted, not written)."""
    body = b"}\x94]\x94"
    for level in range(1, levels + 1):
        body += b"]\x94(" + _get(level) + _get(level) + b"e"
    body += _get(0) + b"\x8c\x01x" + _get(levels + 1) + b"s"
    return _frame(4, body)


def string_doubling(levels: int, size: int = 1000) -> bytes:
    """A ``size``-character string, then lists of it doubled ``levels`` times: bytes of text, not elements."""
    body = b"}" + _put(0) + _key(b"s" * size) + _put(1)
    for level in range(1, levels + 1):
        body += b"]" + _put(level + 1) + b"(" + _get(level) + _get(level) + b"e"
    body += _get(0) + _key(b"x") + _get(levels + 1) + b"s"
    return _frame(2, body)


def nested_marks(depth: int) -> bytes:
    """Protocol 0: ``depth`` MARKs then ``depth`` LISTs: lists nested ``depth`` deep, 2 bytes a level."""
    return b"(" * depth + b"l" * depth + b"."


def nested_appends(depth: int, protocol: int = 2) -> bytes:
    """``{"x": [[[...]]]}`` nested ``depth`` deep with ``EMPTY_LIST`` and ``APPEND`` (no MARK)."""
    return _frame(protocol, b"}" + _key(b"x") + b"]" * depth + b"a" * (depth - 1) + b"s")


def self_reference(protocol: int = 2) -> bytes:
    """``{"x": L}`` where ``L = [L]``."""
    return _frame(protocol, b"}" + _key(b"x") + b"]" + _put(0) + _get(0) + b"as")


def self_reference_dict(protocol: int = 2) -> bytes:
    """``D = {"me": D}``."""
    return _frame(protocol, b"}" + _put(0) + _key(b"me") + _get(0) + b"s")


def mutual_reference(protocol: int = 2) -> bytes:
    """``{"x": A}`` where ``A = [B]`` and ``B = [A]``."""
    body = b"}" + _key(b"x") + b"]" + _put(0) + b"]" + _put(1) + _get(0) + b"a" + b"a"
    return _frame(protocol, body + b"s")


def huge_bytes(size: int) -> bytes:
    """``{"x": <size bytes>}`` uncompressed (BINBYTES8)."""
    return _frame(4, b"}" + _key(b"x") + b"\x8e" + struct.pack("<Q", size) + b"\0" * size + b"s")


def many_small_items(count: int) -> bytes:
    """``{"x": [[], [], ...]}``: ``count`` empty lists, 2 bytes each."""
    return _frame(2, b"}" + _key(b"x") + b"]" + b"]a" * count + b"s")


def colliding_int_keys(count: int) -> bytes:
    """``{"x": {k * (2**61 - 1): 0}}`` for ``count`` ints that all hash to 0 (quadratic dict inserts)."""
    items = []
    for index in range(1, count + 1):
        number = (index * (2**61 - 1)).to_bytes(10, "little", signed=True)
        items.append(b"\x8a" + bytes((len(number),)) + number + b"K\x00")  # LONG1, BININT1 0
    return _frame(2, b"}" + _key(b"x") + b"}(" + b"".join(items) + b"us")


def many_marks(count: int) -> bytes:
    """Protocol 0: a list of ``count`` empty tuples, each ``MARK TUPLE``: ``count`` MARKs open at once
    on a stack ``count`` deep (a MARK found by searching the stack costs that depth each time)."""
    return b"(" + b"(t" * count + b"l."


def garbage_expiry(expiry: bytes = b"X\x07\x00\x00\x00garbage") -> bytes:
    """``{"cart": "1", "_session_expiry": <expiry>}`` (default: a str that is no date)."""
    return _frame(2, b"}(" + _key(b"cart") + _key(b"1") + _key(b"_session_expiry") + expiry + b"u")
