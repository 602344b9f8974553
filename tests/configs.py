"""Every cache configuration the session tests run against, built in one place.

Each gets its own Redis DB so a leak from one cannot satisfy another's test.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tests.servers import standalone

OURS = "cache_sessions.cache.RedisCache"
DJANGO_REDIS = "django_redis.cache.RedisCache"
OUR_CLIENT = "cache_sessions.client.SessionClient"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _config(db: int, backend: str = OURS, prefix: str = "", version: int = 1, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": backend,
        "LOCATION": f"{standalone().url}/{db}",
        "KEY_PREFIX": prefix,
        "VERSION": version,
        "OPTIONS": options,
    }


CONFIGS: dict[str, dict[str, Any]] = {
    "ours-snappy": _config(1),
    "ours-nocompress": _config(2, COMPRESS_LIB=""),
    "ours-zlib-always": _config(3, prefix="site", version=3, COMPRESS_LIB="zlib", COMPRESS_MIN_LENGTH=0),
    "ours-lzma": _config(4, COMPRESS_LIB="lzma", COMPRESS_MIN_LENGTH=10),
    "django-redis+our-client": _config(5, backend=DJANGO_REDIS, prefix="p", CLIENT_CLASS=OUR_CLIENT),
    "django-redis+stock-client": _config(6, backend=DJANGO_REDIS),
}
if _has("lz4"):
    CONFIGS["ours-lz4"] = _config(7, COMPRESS_LIB="lz4", COMPRESS_MIN_LENGTH=10)
if _has("zstandard"):
    CONFIGS["ours-zstd"] = _config(8, COMPRESS_LIB="zstd", COMPRESS_MIN_LENGTH=10)
