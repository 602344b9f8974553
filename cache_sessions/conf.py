"""Session options of a cache alias: the one place they are read and checked.

They live in the alias's ``OPTIONS`` beside django-redis's own, under the names
django-redisession used. ``SessionOptions.from_options`` runs once per client.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from . import keys
from .codec import Codec

DEFAULTS: dict[str, Any] = {
    "USE_HASH": False,
    "KEY_GENERATOR": None,  # None: keys.text
    "COMPRESS_LIB": "snappy",
    "COMPRESS_MIN_LENGTH": 400,
    "LOG_KEY_ERROR": False,
}

# Read by django-redis (7.0) and its connection factories; allowed beside ours.
DJANGO_REDIS_OPTIONS = frozenset(
    {
        "CLIENT_CLASS",
        "SERIALIZER",
        "COMPRESSOR",
        "CONNECTION_FACTORY",
        "CONNECTION_POOL_CLASS",
        "CONNECTION_POOL_KWARGS",
        "REDIS_CLIENT_CLASS",
        "REDIS_CLIENT_KWARGS",
        "PARSER_CLASS",
        "USERNAME",
        "PASSWORD",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "IGNORE_EXCEPTIONS",
        "LOG_IGNORED_EXCEPTIONS",
        "CLOSE_CONNECTION",
        "REPLICA_READ_ONLY",
        "SENTINELS",
        "SENTINEL_KWARGS",
        "PICKLE_VERSION",
        "REVERSE_KEY_FUNCTION",
    }
)


@dataclass(frozen=True)
class SessionOptions:
    use_hash: bool
    key_generator: keys.KeyGenerator
    codec: Codec
    log_key_error: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SessionOptions:
        unknown = sorted(set(options) - set(DEFAULTS) - DJANGO_REDIS_OPTIONS)
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, [*DEFAULTS, *DJANGO_REDIS_OPTIONS], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ImproperlyConfigured(f"Unknown cache OPTIONS key {name!r}.{hint}")
        values = {**DEFAULTS, **options}
        if values["USE_HASH"]:
            raise ImproperlyConfigured(
                "OPTIONS['USE_HASH'] = True: hash mode is not available in this version of "
                "cache_sessions yet. Set USE_HASH to False (one Redis key per session)."
            )
        min_length = values["COMPRESS_MIN_LENGTH"]
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 0:
            raise ImproperlyConfigured(f"OPTIONS['COMPRESS_MIN_LENGTH'] must be an int >= 0, not {min_length!r}")
        compress_lib = values["COMPRESS_LIB"] or ""
        try:
            codec = Codec(compress_lib, min_length)
        except (ImportError, TypeError) as exc:
            raise ImproperlyConfigured(f"OPTIONS['COMPRESS_LIB'] = {compress_lib!r}: {exc}") from exc
        generator = values["KEY_GENERATOR"]
        return cls(
            use_hash=bool(values["USE_HASH"]),
            key_generator=keys.text if generator is None else keys.load_callable(generator, "KEY_GENERATOR"),
            codec=codec,
            log_key_error=bool(values["LOG_KEY_ERROR"]),
        )
