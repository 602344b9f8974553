"""Session key -> Redis name. Pure functions, no I/O.

A Django session key is at least 8 characters of ``[a-z0-9]`` (Django makes
32). Anything else in a cookie is not a session we could have written, so it
is refused before it gets near Redis: a cookie can never name a key outside
the session namespace.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

MAX_SESSION_KEY_LENGTH = 128
_VALID_KEY = re.compile(rf"[a-z0-9]{{8,{MAX_SESSION_KEY_LENGTH}}}\Z")

KeyGenerator = Callable[[str], "bytes | str"]


ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"  # Django's VALID_KEY_CHARS
# Bytes 0..251 map evenly onto the 36 characters (252 = 7 * 36); 252..255 are dropped.
_TO_ALPHABET = bytes(ALPHABET[byte % 36] for byte in range(252)) + bytes(4)
_DROPPED = bytes(range(252, 256))


def new_session_key() -> str:
    """32 uniformly random characters of ``[a-z0-9]`` (165 bits), like Django's,
    from the OS's CSPRNG, with one call for all of them instead of one per character."""
    while True:
        key = secrets.token_bytes(40).translate(_TO_ALPHABET, _DROPPED)
        if len(key) >= 32:
            return key[:32].decode()


def is_valid_session_key(session_key: object) -> bool:
    return isinstance(session_key, str) and _VALID_KEY.match(session_key) is not None


def text(session_key: str) -> bytes:
    """The session key as it is: readable in ``redis-cli``. Default in string mode."""
    return session_key.encode("ascii")


def namespace(key_prefix: str, version: int, marker: str = "s") -> bytes:
    """The prefix of every session name of an alias: ``<KEY_PREFIX>:s<VERSION>:``.

    Django's default key function makes ``<KEY_PREFIX>:<VERSION>:<key>`` with
    an integer version, so no cache key made through the alias can ever equal
    a session name, while ``KEY_PREFIX`` and ``VERSION`` still apply. The
    alias's ``KEY_FUNCTION`` is not used here: it is documented to take an
    integer version, and what it makes of cache keys is no business of the
    sessions. App records kept in buckets (``SessionClient.bucket_*``) use the
    marker ``r``.
    """
    return f"{key_prefix}:{marker}{version}:".encode()


def load_callable(value: Any, option: str) -> Callable[..., Any]:
    """An option that is a callable, or a dotted path to one."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"OPTIONS[{option!r}]: cannot import {value!r}: {exc}") from exc
    if not callable(value):
        raise ImproperlyConfigured(f"OPTIONS[{option!r}] must be a callable or a dotted path to one, not {value!r}")
    function: Callable[..., Any] = value
    return function


def has_one_hash_tag(name: bytes) -> bool:
    """Whether ``name`` holds exactly one ``{tag}`` (one '{', then one '}', something
    between): what decides its Redis Cluster slot, and that of ``name + b":..."``."""
    return name.count(b"{") == 1 and name.count(b"}") == 1 and name.index(b"{") + 1 < name.index(b"}")
