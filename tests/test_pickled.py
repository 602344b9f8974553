"""Reading plain data out of pickles without unpickling them (cache_sessions/pickled.py)."""

from __future__ import annotations

import datetime
import decimal
import pickle

import pytest

from cache_sessions.migration.base import Unreadable
from cache_sessions.migration.pickled import loads

UTC = datetime.UTC
SHARED = [1, 2]
PLAIN = {
    "none": None,
    "flags": [True, False],
    "ints": [0, 1, -1, 255, 65535, 2**31, -(2**40), 2**100],
    "floats": [1.5, -0.0, 1e300],
    "text": "Zoë ✓",
    "tuple": (1, "a", (2,)),
    "set": {1, 2},
    "frozen": frozenset({"x"}),
    "nested": {"a": [{"b": {}}], 7: "seven"},
    "shared": [SHARED, SHARED],
    "when": datetime.datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC),
    "naive": datetime.datetime(2012, 4, 1),
    "day": datetime.date(2026, 1, 2),
    "time": datetime.time(3, 4),
    "delta": datetime.timedelta(days=2, seconds=5),
    "price": decimal.Decimal("19.99"),
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_of_every_protocol(protocol):
    assert loads(pickle.dumps(PLAIN, protocol)) == PLAIN


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_bytes(protocol):
    """Protocols 0-2 of Python 3 name _codecs.encode(text, "latin1") for bytes: read, for that codec only."""
    assert loads(pickle.dumps({"b": b"\x00\xff"}, protocol)) == {"b": b"\x00\xff"}
    with pytest.raises(Unreadable, match="rot13"):
        loads(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")


class Anything:
    def __reduce__(self):
        return (print, ("this must never run",))


class Instance:
    pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("value", [Anything(), Instance(), {"x": Instance()}], ids=["reduce", "object", "nested"])
def test_anything_else_is_refused_without_running_it(value, protocol, capsys):
    with pytest.raises(Unreadable):
        loads(pickle.dumps(value, protocol))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x80\x04", pickle.dumps(PLAIN, 2)[:-1], pickle.dumps(PLAIN, 2)[:40], b"garbage", b"(lp0\nI1\naa."],
)
def test_malformed_pickles_are_unreadable(garbage):
    with pytest.raises(Unreadable):
        loads(garbage)
