"""Every cache configuration the session tests run against, built in one place.

Each gets its own Redis DB so a leak from one cannot satisfy another's test.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tests.support import partitions, sentinels
from tests.support.clusters import contract_cluster
from tests.support.redis_stats import CountingConnection, CountingSentinelConnection
from tests.support.servers import standalone

OURS = "cache_sessions.cache.RedisCache"
DJANGO_REDIS = "django_redis.cache.RedisCache"
OUR_CLIENT = "cache_sessions.client.SessionClient"
CLUSTER_CLIENT = "cache_sessions.cluster.ClusterClient"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _config(db: int, backend: str = OURS, prefix: str = "", version: int = 1, **options: Any) -> dict[str, Any]:
    """A cache alias on DB ``db`` whose connections count round trips (``tests.support.redis_stats``)."""
    pool_kwargs = {"connection_class": CountingConnection, **options.pop("CONNECTION_POOL_KWARGS", {})}
    return {
        "BACKEND": backend,
        "LOCATION": f"{standalone().url}/{db}",
        "KEY_PREFIX": prefix,
        "VERSION": version,
        "OPTIONS": {**options, "CONNECTION_POOL_KWARGS": pool_kwargs},
    }


def _cluster_config(prefix: str = "", version: int = 1, **options: Any) -> dict[str, Any]:
    """A cache alias on the contract cluster (3 primaries; only DB 0 there), counting round trips."""
    pool_kwargs = {"connection_class": CountingConnection}
    return {
        "BACKEND": OURS,
        "LOCATION": contract_cluster().urls,
        "KEY_PREFIX": prefix,
        "VERSION": version,
        "OPTIONS": {**options, "CLIENT_CLASS": CLUSTER_CLIENT, "CONNECTION_POOL_KWARGS": pool_kwargs},
    }


STRING, HASH = {"USE_HASH": False}, {"USE_HASH": True}

CONFIGS: dict[str, dict[str, Any]] = {
    # string mode: one key per session
    "string-snappy": _config(1, **STRING),
    "string-nocompress": _config(2, **STRING, COMPRESS_LIB=""),
    "string-zlib-prefix-v3": _config(3, prefix="site", version=3, **STRING, COMPRESS_LIB="zlib", COMPRESS_MIN_LENGTH=0),
    "string-lzma": _config(4, **STRING, COMPRESS_LIB="lzma", COMPRESS_MIN_LENGTH=10),
    "string-django-redis+our-client": _config(5, backend=DJANGO_REDIS, prefix="p", CLIENT_CLASS=OUR_CLIENT, **STRING),
    "string-django-redis+stock-client": _config(6, backend=DJANGO_REDIS, **STRING),
    # hash mode: sessions as fields of bucket hashes
    "hash-defaults": _config(7),
    "hash-zlib-prefix-v2-8-buckets": _config(8, prefix="site", version=2, BUCKETS=8, COMPRESS_LIB="zlib"),
    "hash-overflow": _config(9, **HASH, HASH_MAX_INLINE=40, COMPRESS_LIB=""),
    "hash-django-redis+stock-client": _config(10, backend=DJANGO_REDIS, **HASH),
    # Redis Cluster (tests/support/clusters.py): the same contract, each session on the node owning its slot
    "string-cluster": _cluster_config(**STRING),
    "hash-cluster": _cluster_config(),
    "hash-cluster-overflow-prefix-v2": _cluster_config(prefix="site", version=2, HASH_MAX_INLINE=40, COMPRESS_LIB=""),
}
if _has("lz4"):
    CONFIGS["string-lz4"] = _config(11, **STRING, COMPRESS_LIB="lz4", COMPRESS_MIN_LENGTH=10)
if _has("zstandard"):
    CONFIGS["hash-zstd"] = _config(12, **HASH, COMPRESS_LIB="zstd", COMPRESS_MIN_LENGTH=10)


# Topologies: the same contract on a Sentinel service (1 primary + 2 replicas + 3
# sentinels, tests/support/sentinels.py) and on three servers by weight (tests/support/partitions.py).
def _sentinel(db: int, **options: Any) -> dict[str, Any]:
    pool_kwargs = {"connection_class": CountingSentinelConnection}
    config = _config(db, SENTINELS=sentinels.group().addresses, CONNECTION_POOL_KWARGS=pool_kwargs, **options)
    return {**config, "LOCATION": sentinels.group().location(db)}


def _partitioned(db: int, **options: Any) -> dict[str, Any]:
    return {**_config(db, WEIGHTS=[1, 2, 1], **options), "LOCATION": [partitions.url(i, db) for i in range(3)]}


CONFIGS["string-sentinel"] = _sentinel(1, **STRING)
CONFIGS["hash-sentinel"] = _sentinel(2, **HASH)
CONFIGS["string-partitioned"] = _partitioned(1, **STRING)
CONFIGS["hash-partitioned"] = _partitioned(2, **HASH)

STRING_CONFIGS = sorted(name for name in CONFIGS if name.startswith("string-"))
HASH_CONFIGS = sorted(name for name in CONFIGS if name.startswith("hash-"))
