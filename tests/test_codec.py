"""The stored byte format: golden bytes, every codec, and hostile input."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
import zlib

import pytest

from cache_sessions.errors import CorruptSession, SessionTooLarge, UnencodableSession
from cache_sessions.format.codec import Codec
from cache_sessions.format.compression import BUILTIN


def _available() -> list[str]:
    names = []
    for name in ["", *BUILTIN]:
        try:
            Codec(name)
        except ImportError:
            continue
        names.append(name)
    return names


AVAILABLE = _available()
BIG = {"cart": [{"sku": f"sku-{i}", "qty": i} for i in range(60)]}


LOGGED_IN = {
    "_auth_user_id": "1",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "8c6976e5b5410415bde908bd4dee15dfb167a9c873fc4bb8a81f6f2ab448a918",
    "_csrftoken": "Q2xDm6vbv8hl0pQyWRMoWBPg7pPW3sE3",
}


def test_golden_bytes_compact_format():
    codec = Codec("snappy", 400)
    assert codec.encode({"a": 1}) == bytes.fromhex("2081a16101")
    assert codec.encode({"a": 1}, expires_at=1_700_000_000) == bytes.fromhex("286553f10081a16101")
    assert codec.encode({"_auth_user_backend": "worked"}) == bytes.fromhex("208101d40108")
    assert codec.encode({"h": "00ff" * 8}) == bytes.fromhex("2081a168d802" + "00ff" * 8)


def test_format_1_written_by_earlier_versions_stays_readable():
    codec = Codec("snappy", 400)
    assert codec.decode(bytes.fromhex("1081a16101")) == ({"a": 1}, None)
    assert codec.decode(bytes.fromhex("186553f10081a16101")) == ({"a": 1}, 1_700_000_000)


def test_a_logged_in_session_is_small():
    data = Codec("snappy", 400).encode(LOGGED_IN, expires_at=1_700_000_000)
    assert len(data) <= 85
    assert Codec().decode(data) == (LOGGED_IN, 1_700_000_000)


def test_non_str_keys_fall_back_to_format_1():
    data = Codec().encode({1: "one", "a": "00" * 8})
    assert data[0] >> 4 == 1
    assert Codec().decode(data)[0] == {1: "one", "a": "00" * 8}


@pytest.mark.parametrize("text", ["00" * 7, "ABCDEF" * 4, "abc" * 7, "0" * 17, "g0" * 8])
def test_strings_that_are_not_even_lowercase_hex_stay_strings(text):
    codec = Codec()
    assert codec.decode(codec.encode({"v": text}))[0] == {"v": text}


def test_nested_values_are_not_compacted():
    session = {"cart": [{"backend": "worked", "hash": "ab" * 16}]}
    codec = Codec()
    assert codec.decode(codec.encode(session))[0] == session


def test_golden_bytes_zlib():
    payload = bytes.fromhex("81a16101")
    stored = bytes((0x22,)) + zlib.compress(payload)
    assert Codec("").decode(stored) == ({"a": 1}, None)


@pytest.mark.parametrize("name", AVAILABLE)
def test_round_trip_and_header_names_the_codec(name):
    codec = Codec(name, 0)
    data = codec.encode(BIG)
    assert data[0] >> 4 == 2
    assert data[0] & 0x07 == (BUILTIN[name][0] if name else 0)
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
    assert codec.encode({"a": "x" * 1000})[0] & 0x07 == BUILTIN["zlib"][0]


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
        b"\x30\x81\xa1a\x01",  # format version 3 does not exist yet
        b"\xff" * 10,
        b"\x10\x81\xa1",  # truncated msgpack
        b"\x11not snappy at all",
        b"\x12\x78\x9c\x00",  # truncated zlib
        b"\x18\x00",  # truncated expiry
        b"\x10\x93\x01\x02\x03",  # a list, not a map
        b"\x16whatever",  # an overflow pointer is not a session
        b"\x20\x81\x7f\xa1a",  # key index outside the static table
        b"\x20\x81\xff\xa1a",  # a negative key index (-1) is not an index from the end
        b"\x20\x81\xa1a\xd4\x01\x7f",  # value index outside the static table
        b"\x20\x81\xa1a\xd4\x09\x00",  # unknown ext type
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


# Bounded decoding: a hostile value in Redis costs a bounded amount of memory and time.

LIMIT = 64 * 1024


def _compressed(name: str, payload: bytes) -> bytes:
    """A stored value (format 1, no expiry) of ``payload`` compressed with ``name``."""
    from cache_sessions.format.compression import builtin

    compression = builtin(name)
    return bytes((0x10 | compression.id,)) + compression.compress(payload)


def _big_map(size: int) -> bytes:
    """A msgpack map {"a": <str of about ``size`` bytes>}."""
    import msgpack

    return msgpack.packb({"a": "x" * size})


@pytest.mark.parametrize("name", [name for name in AVAILABLE if name])
def test_a_payload_that_inflates_past_the_limit_is_corrupt(name):
    codec = Codec(name, 0, max_size=LIMIT)
    assert codec.decode(_compressed(name, _big_map(LIMIT - 100)))[0]["a"] == "x" * (LIMIT - 100)
    with pytest.raises(CorruptSession, match="MAX_SESSION_BYTES"):
        codec.decode(_compressed(name, _big_map(LIMIT + 1)))


@pytest.mark.parametrize("name", [name for name in AVAILABLE if name])
def test_a_compression_bomb_is_refused_without_inflating_it(name):
    import tracemalloc

    bomb = _compressed(name, _big_map(64 << 20))  # 64 MiB of "x", a few KB compressed
    codec = Codec(name, 0, max_size=LIMIT)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptSession):
            codec.decode(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The compressed value itself is read (snappy's ratio is at most ~21:1), and lzma's
    # decoder sets up its dictionary (8 MiB at the default preset, capped by memlimit).
    decoder = 16 << 20 if name == "lzma" else 0
    assert peak < 2 * len(bomb) + 4 * LIMIT + 256 * 1024 + decoder, f"{name}: {len(bomb)} bytes allocated {peak}"


def test_an_uncompressed_payload_over_the_limit_is_corrupt():
    with pytest.raises(CorruptSession, match="MAX_SESSION_BYTES"):
        Codec("", max_size=LIMIT).decode(b"\x10" + _big_map(LIMIT))


def test_a_session_over_the_limit_is_refused_at_save():
    codec = Codec("snappy", max_size=LIMIT)
    codec.encode({"a": "x" * (LIMIT - 100)})
    with pytest.raises(SessionTooLarge, match="MAX_SESSION_BYTES"):
        codec.encode({"a": "x" * LIMIT})
    assert issubclass(SessionTooLarge, UnencodableSession)


def test_hex_compaction_is_linear_in_memory():
    import tracemalloc

    text = "ab" * (2 << 20)  # 4 MiB of lowercase hex
    codec = Codec("", max_size=16 << 20)
    tracemalloc.start()
    try:
        data = codec.encode({"h": text})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) < len(text) // 2 + 100  # stored as raw bytes
    assert peak < 3 * len(text), peak  # was ~60x with the regex
    assert codec.decode(data)[0] == {"h": text}


def test_tuple_and_frozenset_keys_load_back_as_tuples():
    codec = Codec()
    session = {"cart": {("sku", 1): 2, (("nested", 3), "x"): [1]}, "f": {frozenset({7}): "seven"}}
    loaded = codec.decode(codec.encode(session))[0]
    assert loaded["cart"] == {("sku", 1): 2, (("nested", 3), "x"): [1]}
    assert loaded["f"] == {(7,): "seven"}


@pytest.mark.parametrize(
    "session, where",
    [
        (
            {"f": {frozenset({1}): "a", (1,): "b"}},
            r"session\['f'\] cannot be stored: its keys frozenset\(\{1\}\) and \(1,\)",
        ),
        ({frozenset({1}): "a", (1,): "b"}, r"session keys frozenset\(\{1\}\) and \(1,\)"),
        ({"cart": [{"n": {(frozenset({2}),): 1, ((2,),): 2}}]}, r"session\['cart'\] cannot be stored: its keys"),
        ({"e": {(): 1, frozenset(): 2}}, r"session\['e'\] cannot be stored: its keys \(\) and frozenset\(\)"),
    ],
)
def test_keys_that_would_load_as_one_are_refused_naming_the_entry(session, where):
    """A frozenset key loads as a tuple: beside a tuple of the same items, one entry would be lost."""
    with pytest.raises(UnencodableSession, match=where + r".* would both load as"):
        Codec().encode(session)


def test_keys_that_stay_apart_are_stored():
    codec = Codec()
    session = {"f": {frozenset({1, 2}): "a", (1,): "b", "1": 1, b"1": 2, 1.5: 3}, "s": {frozenset({1}), (1,)}}
    assert codec.decode(codec.encode(session))[0] == {
        "f": {tuple(frozenset({1, 2})): "a", (1,): "b", "1": 1, b"1": 2, 1.5: 3},
        "s": [[1], [1]],
    }


# msgspec reads what msgpack wrote, and writes msgpack's very bytes where it writes.

OLD_SESSION_HEX = (  # format 1 (a non-str key) as msgpack-python wrote it before msgspec
    "186553f10085ad5f617574685f757365725f6964a137a47768656ed7ff3b9aca0069f49cd7a4636172748292a3736b7501029292a16e"
    "03a1789201c40200ffa47461677392a161a16209c0"
)
OLD_COMPACT_HEX = (  # format 2, with table values, hex, a timestamp, a tuple key, a float, big ints, bytes
    "208900a137a47768656ed7ff3b9aca0069f49cd7a4636172748192a3736b750102a166cb3ff8000000000000a36e6567d1fed4a3626967"
    "cfffffffffffffffffa162c40101a76261636b656e64d40108a168d802abababababababababababababababab"
)
WHEN = datetime.datetime(2026, 5, 1, 12, 30, 15, 250000, tzinfo=datetime.UTC)


def test_values_written_with_msgpack_load_with_msgspec():
    codec = Codec()
    assert codec.decode(bytes.fromhex(OLD_SESSION_HEX)) == (
        {
            "_auth_user_id": "7",
            "when": WHEN,
            "cart": {("sku", 1): 2, (("n", 3), "x"): [1, b"\x00\xff"]},
            "tags": ["a", "b"],
            9: None,
        },
        1_700_000_000,
    )
    session = {
        "_auth_user_id": "7",
        "when": WHEN,
        "cart": {("sku", 1): 2},
        "f": 1.5,
        "neg": -300,
        "big": 2**64 - 1,
        "b": b"\x01",
        "backend": "worked",
        "h": "ab" * 16,
    }
    assert codec.decode(bytes.fromhex(OLD_COMPACT_HEX)) == (session, None)
    assert codec.encode(session).hex() == OLD_COMPACT_HEX


def test_a_logged_in_session_is_written_by_msgspec_as_msgpack_wrote_it():
    from cache_sessions.format.codec import _pack, _packb
    from cache_sessions.format.compact import compact

    compacted, plain = compact(LOGGED_IN)
    assert plain
    assert _pack(compacted, plain)[0] == _packb(compacted)[0]


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        datetime.date(2026, 1, 1),
        datetime.time(12, 0),
        datetime.timedelta(seconds=5),
        decimal.Decimal("9.99"),
        uuid.UUID(int=7),
        Colour.RED,
        Point(1),
        complex(1, 2),
        2**64,
    ],
    ids=repr,
)
@pytest.mark.parametrize("where", ["top", "nested"])
def test_values_msgpack_refuses_are_refused_though_msgspec_would_write_them(value, where):
    session = {"v": value} if where == "top" else {"cart": [{"v": value}]}
    with pytest.raises(UnencodableSession, match=r"session\['(v|cart)'\]"):
        Codec().encode(session)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x10\x81\xa1a\xd4\x01\x00",  # format 1 has no ext types of ours
        b"\x10\x81\xa1a\xc7\x01\x05\x00",  # nor anyone's
        b"\x10\x81\xa1a\x01\x00",  # trailing bytes
        b"\x10" + b"\x91" * 5000 + b"\x00",  # nested past the recursion limit
        b"\x10\x81\x81\xa1a\x01\x01",  # a map used as a key
        b"\x10\xdd\xff\xff\xff\xff",  # a length far past the payload
    ],
)
def test_garbage_msgspec_sees_is_rejected_with_corrupt_session(garbage):
    with pytest.raises(CorruptSession):
        Codec().decode(garbage)


def test_one_codec_serves_many_threads():
    """The msgspec encoder and decoders are shared by every thread of a process (ext hooks,
    which run Python, let threads switch in the middle of a decode)."""
    import sys
    import threading

    codec = Codec("snappy", 0)
    sessions = [{**LOGGED_IN, "_auth_user_id": str(n), "cart": [{"n": n, "h": "ab" * (8 + n)}] * n} for n in range(16)]
    failures: list[str] = []

    def work(n: int) -> None:
        for _ in range(300):
            session = sessions[(n * 7 + _) % len(sessions)]
            if codec.decode(codec.encode(session, expires_at=n))[0] != session:
                failures.append(f"thread {n}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures
