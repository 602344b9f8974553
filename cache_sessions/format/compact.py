"""Format 2 of the stored value: the static tables, and a session's compact form.

Format 2 spends one byte where Django spends a long string: top-level keys
found in ``KEY_TABLE`` are stored as their index (a msgpack int), values
found in ``VALUE_TABLE`` as ext type 1 (one index byte), and lowercase hex
strings (``_auth_user_hash``, tokens) as ext type 2 (the raw bytes, half the
size), in the spirit of HPACK's static table. A logged-in session shrinks
from ~206 to ~79 bytes before compression. The tables are append-only: an
entry's index is what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import msgspec


class TableError(ValueError):
    """A compact value names an index or an ext type the tables do not have."""


KEY_TABLE: tuple[str, ...] = (
    "_auth_user_id",
    "_auth_user_backend",
    "_auth_user_hash",
    "_session_expiry",
    "_csrftoken",
    "_messages",
    "django_language",
    "testcookie",
    "_password_reset_token",
    "_language",
    "otp_device_id",
    "account_verified_email",
)
VALUE_TABLE: tuple[str, ...] = (
    "django.contrib.auth.backends.ModelBackend",
    "django.contrib.auth.backends.AllowAllUsersModelBackend",
    "django.contrib.auth.backends.RemoteUserBackend",
    "django.contrib.auth.backends.AllowAllUsersRemoteUserBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "axes.backends.AxesStandaloneBackend",
    "axes.backends.AxesBackend",
    "guardian.backends.ObjectPermissionBackend",
    "worked",  # Django's test cookie value
)
_TABLE_VALUE, _HEX_VALUE = 1, 2  # msgpack ext type codes of format 2
_KEY_INDEX = {key: index for index, key in enumerate(KEY_TABLE)}
_VALUE_EXT = {value: msgspec.msgpack.Ext(_TABLE_VALUE, bytes((index,))) for index, value in enumerate(VALUE_TABLE)}
_HEX_DIGITS = "0123456789abcdef"
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def is_hex(value: str) -> bool:
    """Even-length lowercase hex of 16+ characters (linear: ``str.strip`` in C, no regex)."""
    return len(value) >= 16 and not len(value) & 1 and not value.strip(_HEX_DIGITS)


def compact(session: Mapping[Any, Any]) -> tuple[dict[Any, Any] | None, bool]:
    """The format-2 form of a session (None when it has a non-str key), and whether every
    top-level value is a plain scalar (then msgspec may write it)."""
    out: dict[Any, Any] = {}
    plain = True
    for key, value in session.items():
        if type(key) is not str:
            return None, False
        kind = type(value)
        if kind is str:
            ext = _VALUE_EXT.get(value)
            if ext is not None:
                value = ext
            elif is_hex(value):
                value = msgspec.msgpack.Ext(_HEX_VALUE, bytes.fromhex(value))
        elif kind not in _PLAIN_SCALARS:
            plain = False
        out[_KEY_INDEX.get(key, key)] = value
    if not plain:  # for msgpack
        for key, value in out.items():
            if type(value) is msgspec.msgpack.Ext:
                out[key] = msgpack.ExtType(value.code, value.data)
    return out, plain


def ext_hook(code: int, data: memoryview) -> Any:
    """The string an ext value of format 2 stands for (msgspec's decoder calls it)."""
    if code == _TABLE_VALUE and len(data) == 1 and data[0] < len(VALUE_TABLE):
        return VALUE_TABLE[data[0]]
    if code == _HEX_VALUE:
        return data.hex()
    raise TableError(f"unknown msgpack ext type {code}")


def expand(stored: dict[Any, Any]) -> dict[str, Any]:
    """A session from its format-2 form."""
    out = {}
    for key, value in stored.items():
        if type(key) is int:
            if not 0 <= key < len(KEY_TABLE):
                raise TableError(f"key index {key} outside the static table")
            key = KEY_TABLE[key]
        out[key] = value
    return out
