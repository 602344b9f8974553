"""Every session that saves loads back equal, modulo the documented normalisations.

Those are (README, "The stored value"): tuples, sets and frozensets come back as
lists; a tuple or frozenset used as a dict key comes back as a tuple; bytearray
as bytes; dict and str subclasses as dict and str; aware datetimes as UTC
datetimes (equal instants). A session that cannot be stored fails its save with
``UnencodableSession`` and stores nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.msgpack import Ext

from cache_sessions.errors import UnencodableSession
from cache_sessions.format.codec import _ENCODER, Codec, _pack, _packb
from cache_sessions.format.compact import KEY_TABLE, VALUE_TABLE, compact

UTC = datetime.UTC

hex_text = st.binary(min_size=8, max_size=40).map(bytes.hex)
texts = st.text(max_size=40) | st.sampled_from(VALUE_TABLE) | hex_text
integers = st.integers(min_value=-(2**64), max_value=2**65)  # a little past what msgpack stores
datetimes = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1), timezones=st.just(UTC)
)
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False) | texts | st.binary(max_size=40) | datetimes
hashable = st.recursive(
    st.none() | st.booleans() | integers | texts | st.binary(max_size=20),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(hashable, max_size=3)
        | st.dictionaries(hashable, inner, max_size=4)
    ),
    max_leaves=25,
)
# "_session_expiry" is Django's own (set_expiry() writes it; anything else there is a bug).
session_keys = st.sampled_from([key for key in KEY_TABLE if key != "_session_expiry"]) | texts | integers
sessions = st.dictionaries(session_keys.filter(lambda key: key != "_session_expiry"), values, max_size=8)


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {normalised_key(key): normalised(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [normalised(item) for item in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def normalised_key(key: Any) -> Any:
    if isinstance(key, (tuple, frozenset)):
        return tuple(normalised_key(item) for item in key)
    return key


def entries(value: Any) -> int:
    """Entries of every dict and items of every list, set and tuple in ``value``, keys included."""
    if isinstance(value, dict):
        return sum(1 + entries(key) + entries(item) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(1 + entries(item) for item in value)
    return 0


@settings(max_examples=400, deadline=None)
@given(sessions, st.sampled_from(["", "snappy", "zlib"]), st.sampled_from([None, 1_700_000_000]))
def test_codec_round_trip(session, compress_lib, expires_at):
    codec = Codec(compress_lib, 0)
    try:
        data = codec.encode(session, expires_at=expires_at)
    except UnencodableSession:
        return  # e.g. an int beyond 64 bits: refused, nothing stored
    assert codec.decode(data) == (normalised(session), expires_at)
    assert entries(codec.decode(data)[0]) == entries(session)  # nothing merged away


# Keys built to load as one: frozensets and tuples of the same items, at any depth, among
# values Python already takes as one key (1, 1.0, True) or msgpack keeps apart ("1", b"1").
close_atoms = st.sampled_from([0, 1, 1.0, True, False, -1, "1", b"1", "", None])
close_keys = st.recursive(
    close_atoms,
    lambda inner: st.tuples(inner) | st.tuples(inner, inner) | st.frozensets(inner, max_size=2),
    max_leaves=4,
)
close_values = st.recursive(
    st.integers(0, 3) | st.frozensets(close_keys, max_size=2),
    lambda inner: st.dictionaries(close_keys, inner, max_size=4) | st.lists(inner, max_size=3) | st.tuples(inner),
    max_leaves=12,
)
close_sessions = st.dictionaries(st.text(max_size=2) | close_keys, close_values, max_size=4)


@settings(max_examples=600, deadline=None)
@given(close_sessions)
def test_a_session_loads_back_equal_or_is_refused_never_altered(session):
    """Two keys that would load as one are refused at save (naming the entry); anything else
    loads back with every entry, equal but for the documented normalisations."""
    codec = Codec("", 0)
    try:
        data = codec.encode(session)
    except UnencodableSession as exc:
        assert "would both load as" in str(exc)
        assert entries(normalised(session)) < entries(session)  # refused only where an entry would be lost
        return
    loaded = codec.decode(data)[0]
    assert loaded == normalised(session)
    assert entries(loaded) == entries(session)


@pytest.mark.django_db(databases=[])
def test_keys_that_would_load_as_one_fail_the_save_and_store_nothing(SessionStore):
    store = SessionStore()
    store.update({"_auth_user_id": "1", "prices": {frozenset({"sku-1"}): 2, ("sku-1",): 3, ("x",): 4}})
    with pytest.raises(UnencodableSession, match=r"session\['prices'\] cannot be stored: its keys .* would both load"):
        store.save()
    assert store.session_key is None or not SessionStore().exists(store.session_key)
    store = SessionStore()
    store["prices"] = {("sku", 1): 3, ("x",): 4, frozenset({"y"}): 5}
    store.save()
    assert SessionStore(store.session_key)["prices"] == {("sku", 1): 3, ("x",): 4, ("y",): 5}


@pytest.mark.django_db(databases=[])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=sessions)
def test_every_session_that_saves_loads_back_equal(SessionStore, session):
    store = SessionStore()
    store.update(session)
    try:
        store.save()
    except UnencodableSession:
        assert store.session_key is None or not SessionStore().exists(store.session_key)
        return
    assert dict(SessionStore(store.session_key).items()) == normalised(session)


@settings(max_examples=400, deadline=None)
@given(sessions)
def test_msgspec_writes_the_bytes_msgpack_writes(session):
    """Wherever msgpack can store a session, msgspec's bytes are msgpack's (nested values
    included, though the codec hands msgspec only sessions of top-level scalars), and the
    codec's packing is msgpack's, or refuses what msgpack refuses."""
    compacted, plain = compact(session)
    value = session if compacted is None else compacted
    try:
        expected = _packb(value)[0]
    except (TypeError, ValueError, OverflowError):
        with pytest.raises((TypeError, ValueError, OverflowError)):
            _pack(value, plain)
        return
    assert _pack(value, plain)[0] == expected
    as_msgspec = {k: Ext(v.code, v.data) if type(v) is msgpack.ExtType else v for k, v in value.items()}
    assert _ENCODER.encode(as_msgspec) == expected
