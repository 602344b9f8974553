"""Session key generation and validation."""

from __future__ import annotations

from collections import Counter

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

from cache_sessions.keys import ALPHABET, is_valid_session_key, new_session_key


def test_alphabet_is_djangos():
    assert ALPHABET.decode() == VALID_KEY_CHARS


def test_new_keys_are_valid_unique_and_uniform():
    keys = [new_session_key() for _ in range(20_000)]
    assert all(len(key) == 32 and is_valid_session_key(key) for key in keys)
    assert len(set(keys)) == len(keys)
    counts = Counter("".join(keys))
    expected = 32 * 20_000 / 36  # ~17,778 per character
    assert set(counts) == set(VALID_KEY_CHARS)
    assert all(abs(count - expected) < 0.05 * expected for count in counts.values())


def test_validation():
    assert is_valid_session_key("12345678")
    assert is_valid_session_key("a" * 128)
    for bad in ("", "1234567", "a" * 129, "ABCDEFGH", "abcd efgh", "abcdefg:", None, 12345678, b"abcdefgh"):
        assert not is_valid_session_key(bad)
