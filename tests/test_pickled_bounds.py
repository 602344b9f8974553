"""The pickle reader's bounds (cache_sessions/pickled.py, pickle_machine.py): hostile pickles cost
bounded time and memory and end as plain data or ``Unreadable``, whatever their shape.

Ceilings are generous (a loaded 2-core machine, tracemalloc slowing every allocation): the
point is that nothing grows with what a pickle describes, only with its own bounded length.
"""

from __future__ import annotations

import datetime
import decimal
import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cache_sessions.migration import pickled
from cache_sessions.migration.base import Unreadable
from cache_sessions.migration.pickle_machine import LIMITS, Limits, Machine
from cache_sessions.migration.pickled import _run
from cache_sessions.migration.redisession import unpickle
from tests.support import hostile_pickles as bombs

MAX_SECONDS, MAX_PEAK_MB = 5.0, 200
PLAIN_TYPES = (type(None), bool, int, float, str, bytes, decimal.Decimal, datetime.timezone)
PLAIN_TYPES += (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)


def measured(read: Callable[[bytes], Any], payload: bytes) -> tuple[Any, float, float]:
    """``(what read(payload) returned or raised, CPU seconds, peak MB traced)``."""
    tracemalloc.start()
    start = time.process_time()
    try:
        outcome = read(payload)
    except Exception as exc:
        outcome = exc
    finally:
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return outcome, seconds, peak


def assert_plain(value: Any, depth: int = 0) -> None:
    """Plain data, a tree (no cycle: the recursion would not end), at most LIMITS.max_depth deep."""
    assert depth <= LIMITS.max_depth + 2
    if isinstance(value, dict):
        for key, item in value.items():
            assert_plain(key, depth + 1)
            assert_plain(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            assert_plain(item, depth + 1)
    else:
        assert isinstance(value, PLAIN_TYPES), type(value)


def assert_bounded(payload: bytes, read: Callable[[bytes], Any] = unpickle) -> Any:
    outcome, seconds, peak = measured(read, payload)
    assert seconds < MAX_SECONDS, (seconds, payload[:80])
    assert peak < MAX_PEAK_MB, (peak, payload[:80])
    if isinstance(outcome, Exception):
        assert isinstance(outcome, Unreadable), repr(outcome)
    else:
        assert_plain(outcome)
    return outcome


BOMBS = {
    "memo doubling, protocol 2": (bombs.memo_doubling(28), "shared parts counted as copies"),
    "memo doubling, protocol 4": (bombs.memo_doubling_memoize(28), "shared parts counted as copies"),
    "a string doubled": (bombs.string_doubling(20), "shared parts counted as copies"),
    "200,000 nested MARK+LIST": (bombs.nested_marks(200_000), "nested over 100 deep"),
    "200,000 nested APPEND": (bombs.nested_appends(200_000), "nested over 100 deep"),
    "1 MiB + 1 of bytes": (bombs.huge_bytes(LIMITS.max_bytes), "over 1,048,576"),
    "20,000 int keys of one hash": (bombs.colliding_int_keys(20_000), "keys of one hash"),
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_bomb_is_unreadable_in_bounded_time_and_memory(name):
    payload, reason = BOMBS[name]
    with pytest.raises(Unreadable, match=reason):
        pickled.loads(payload)
    assert isinstance(assert_bounded(payload), Unreadable)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize(
    "build", [bombs.self_reference, bombs.self_reference_dict, bombs.mutual_reference], ids=["list", "dict", "mutual"]
)
def test_self_references_are_refused(build, protocol):
    with pytest.raises(Unreadable, match="self-reference"):
        unpickle(build(protocol))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cycles_the_pickler_writes_are_refused(protocol):
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    recursive_dict: dict[str, Any] = {}
    recursive_dict["me"] = [recursive_dict]
    for value in ({"x": cyclic}, recursive_dict):
        with pytest.raises(Unreadable):
            unpickle(pickle.dumps(value, protocol))


def test_shared_values_are_read_and_counted_as_copies():
    shared = ["x" * 1000]
    assert pickled.loads(pickle.dumps({"a": [shared] * 500}, 4)) == {"a": [shared] * 500}
    with pytest.raises(Unreadable, match="copies"):
        pickled.loads(pickle.dumps({"a": [shared] * 1100}, 4))  # 1.1 MB once written out


def test_mark_is_found_in_constant_time():
    """200,000 MARKs open at once (400 KB): each found by its position, not by searching the stack."""
    assert len(assert_bounded(bombs.many_marks(200_000), pickled.loads)) == 200_000


def test_the_step_budget_is_deterministic():
    """A pickle takes the same steps every time (no clock): it is read with that budget, refused with one less."""
    payload = pickle.dumps({"cart": [{"sku": index, "qty": 1} for index in range(1000)]}, 2)
    machine = Machine(LIMITS)
    _run(payload, machine)
    assert 10_000 < machine.steps < 4 * len(payload)
    assert pickled.loads(payload, Limits(max_steps=machine.steps))["cart"][999] == {"sku": 999, "qty": 1}
    with pytest.raises(Unreadable, match=f"over {machine.steps - 1:,} steps"):
        pickled.loads(payload, Limits(max_steps=machine.steps - 1))


def test_a_large_ordinary_session_is_read():
    session = {
        "_auth_user_id": "42",
        "cart": [{"sku": f"SKU-{i:06d}", "qty": i % 5, "tags": {"a", i}} for i in range(2000)],
    }
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert assert_bounded(pickle.dumps(session, protocol)) == session


def test_keys_sharing_a_hash_are_read_up_to_the_limit():
    assert hash(-1) == hash(-2)
    assert pickled.loads(pickle.dumps({-1: "a", -2: "b"}, 2)) == {-1: "a", -2: "b"}
    same = [index * (2**61 - 1) for index in range(1, LIMITS.max_same_hash + 2)]
    assert len(pickled.loads(pickle.dumps(set(same[:-1]), 2))) == LIMITS.max_same_hash
    for value in (set(same), frozenset(same), dict.fromkeys(same), [dict.fromkeys(same)]):
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            with pytest.raises(Unreadable, match="keys of one hash"):
                pickled.loads(pickle.dumps(value, protocol))


# Hostile pickles, every protocol: opcode streams, bombs, real pickles cut or damaged.

SNIPPETS = [
    *[bytes((code,)) for code in b"]})(aestuld\x85\x86\x87N\x88\x89R\x8f\x90\x91\x93\x940.2bpgio\x81\x92"],
    b"K\x01",
    b"K\xff",
    b"M\xff\xff",
    b"J\x00\x00\x00\x80",
    b"\x8a\x09" + b"\xff" * 9,
    b"I12\n",
    b"L7L\n",
    b"G?\xf0\x00\x00\x00\x00\x00\x00",
    b"F1.5\n",
    b"X\x01\x00\x00\x00a",
    b"\x8c\x01b",
    b"U\x02\xc3\xa9",
    b"S'x'\n",
    b"Vz\n",
    b"C\x01c",
    b"B\x01\x00\x00\x00d",
    b"q\x00",
    b"q\x01",
    b"h\x00",
    b"h\x01",
    b"p0\n",
    b"g0\n",
    b"r\x00\x00\x00\x00",
    b"j\x00\x00\x00\x00",
    b"c__builtin__\nset\n",
    b"cbuiltins\nfrozenset\n",
    b"cdatetime\ndatetime\n",
    b"cdecimal\nDecimal\n",
    b"c_codecs\nencode\n",
    b"cos\nsystem\n",
    b"\x8c\x08builtins\x94\x8c\x03set\x94",
    b"\x95\x10\x00\x00\x00\x00\x00\x00\x00",
]
plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)
    ),
    max_leaves=20,
)
protocols = st.integers(0, pickle.HIGHEST_PROTOCOL)


def framed(protocol: int, body: bytes) -> bytes:
    return (bytes((0x80, protocol)) if protocol >= 2 else b"") + body + b"."


opcode_streams = st.builds(
    framed, protocols, st.lists(st.sampled_from(SNIPPETS) | st.binary(max_size=3), max_size=60).map(b"".join)
)
damaged = st.builds(
    lambda value, protocol, cut, flip, byte: (
        lambda data: (
            data[: cut % (len(data) + 1)]
            if flip is None
            else data[: flip % len(data)] + bytes((byte,)) + data[flip % len(data) + 1 :]
        )
    )(pickle.dumps(value, protocol)),
    plain_values,
    protocols,
    st.integers(0, 10**6),
    st.none() | st.integers(0, 10**6),
    st.integers(0, 255),
)
bomb_pickles = st.one_of(
    st.builds(bombs.memo_doubling, st.integers(1, 60), st.integers(2, 5)),
    st.builds(bombs.memo_doubling_memoize, st.integers(1, 60)),
    st.builds(bombs.string_doubling, st.integers(1, 40), st.integers(1, 5000)),
    st.builds(bombs.nested_marks, st.integers(1, 20_000)),
    st.builds(bombs.nested_appends, st.integers(1, 20_000), st.integers(2, 5)),
    st.builds(bombs.many_marks, st.integers(1, 20_000)),
    st.builds(bombs.many_small_items, st.integers(1, 20_000)),
    st.builds(bombs.colliding_int_keys, st.integers(1, 2_000)),
    st.builds(bombs.huge_bytes, st.integers(LIMITS.max_bytes - 40, LIMITS.max_bytes + 40)),
    st.sampled_from([bombs.self_reference, bombs.self_reference_dict, bombs.mutual_reference]).flatmap(
        lambda build: st.builds(build, st.integers(0, 5))
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(opcode_streams | damaged | bomb_pickles)
@example(bombs.memo_doubling(40)).via("the issue's bomb, protocol 2")
@example(bombs.memo_doubling_memoize(40)).via("the issue's bomb, protocol 4")
@example(bombs.nested_marks(200_000)).via("the issue's nesting")
@example(bombs.many_marks(200_000)).via("MARKs open at once")
@example(bombs.self_reference(2)).via("the issue's self-reference")
@example(b"c__builtin__\nset\n.").via("a constructor is not data")
def test_any_pickle_ends_in_bounded_time_and_memory_as_plain_data_or_unreadable(payload):
    assert_bounded(payload)


@settings(max_examples=200, deadline=None)
@given(plain_values.map(lambda value: {"v": value}), protocols)
def test_plain_data_reads_back_equal(value, protocol):
    assert pickled.loads(pickle.dumps(value, protocol)) == value
