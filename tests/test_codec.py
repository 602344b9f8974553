"""The stored byte format: golden bytes, every codec, and hostile input."""

from __future__ import annotations

import datetime
import zlib

import pytest

from cache_sessions.codec import CODECS, Codec, CorruptSession, UnencodableSession


def _available() -> list[str]:
    names = []
    for name in CODECS:
        try:
            Codec(name)
        except ImportError:
            continue
        names.append(name)
    return names


AVAILABLE = _available()
BIG = {"cart": [{"sku": f"sku-{i}", "qty": i} for i in range(60)]}


def test_golden_bytes_uncompressed():
    codec = Codec("snappy", 400)
    assert codec.encode({"a": 1}) == bytes.fromhex("1081a16101")
    assert codec.encode({"a": 1}, expires_at=1_700_000_000) == bytes.fromhex("186553f10081a16101")
    assert codec.decode(bytes.fromhex("1081a16101")) == ({"a": 1}, None)
    assert codec.decode(bytes.fromhex("186553f10081a16101")) == ({"a": 1}, 1_700_000_000)


def test_golden_bytes_zlib():
    payload = bytes.fromhex("81a16101")
    stored = bytes((0x12,)) + zlib.compress(payload)
    assert Codec("").decode(stored) == ({"a": 1}, None)


@pytest.mark.parametrize("name", AVAILABLE)
def test_round_trip_and_header_names_the_codec(name):
    codec = Codec(name, 0)
    data = codec.encode(BIG)
    assert data[0] >> 4 == 1
    assert data[0] & 0x07 == (CODECS[name].id if name else 0)
    assert codec.decode(data) == (BIG, None)


@pytest.mark.parametrize("writer", AVAILABLE)
@pytest.mark.parametrize("reader", AVAILABLE)
def test_values_stay_readable_after_compress_lib_changes(writer, reader):
    data = Codec(writer, 0).encode(BIG)
    assert Codec(reader, 400).decode(data) == (BIG, None)


def test_below_min_length_is_not_compressed():
    codec = Codec("zlib", 400)
    small = {"a": "x" * 100}
    assert codec.encode(small)[0] & 0x07 == 0
    assert codec.encode({"a": "x" * 1000})[0] & 0x07 == CODECS["zlib"].id


def test_incompressible_payload_is_stored_plain():
    import os

    data = Codec("zlib", 0).encode({"r": os.urandom(2000)})
    assert data[0] & 0x07 == 0


def test_custom_compressor_by_dotted_path():
    codec = Codec("zlib", 0)
    custom = Codec("tests.test_codec.BestZlib", 0)
    data = custom.encode(BIG)
    assert data[0] & 0x07 == 7
    assert custom.decode(data) == (BIG, None)
    with pytest.raises(CorruptSession, match="codec 7"):
        codec.decode(data)


class BestZlib:
    """A user-supplied compressor: any class with compress/decompress."""

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, 9)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\x20\x81\xa1a\x01",  # format version 2 does not exist yet
        b"\xff" * 10,
        b"\x10\x81\xa1",  # truncated msgpack
        b"\x11not snappy at all",
        b"\x12\x78\x9c\x00",  # truncated zlib
        b"\x18\x00",  # truncated expiry
        b"\x10\x93\x01\x02\x03",  # a list, not a map
        b"\x16whatever",  # codec 6 is unassigned
        b"\x80\x04\x95\x00\x00",  # a pickle never gets unpickled
    ],
)
def test_garbage_is_rejected_with_corrupt_session(garbage):
    with pytest.raises(CorruptSession):
        Codec("snappy").decode(garbage)


def test_unencodable_value_names_the_session_key():
    codec = Codec()
    with pytest.raises(UnencodableSession, match=r"session\['when'\].*naive datetime"):
        codec.encode({"ok": 1, "when": datetime.datetime(2026, 1, 1)})
    with pytest.raises(UnencodableSession, match=r"session\['obj'\]"):
        codec.encode({"obj": object()})
    assert codec.encode({"ok": 1})  # the packer is usable after a failure


def test_unknown_compress_lib_is_an_import_error():
    with pytest.raises(ImportError):
        Codec("no_such_compressor_module")
    with pytest.raises(TypeError, match="compress"):
        Codec("json")
