"""The servers of a partitioned alias and their weights: read, checked, and turned into HRW nodes.

```python
CACHES["sessions"] = {
    "BACKEND": "cache_sessions.cache.RedisCache",
    "LOCATION": [
        "redis://10.0.0.1:6379/1",
        "redis://:secret@10.0.0.2:6379/1",   # a password per server, in its URL
        "unix:///run/redis/redis.sock?db=1",
    ],
    "OPTIONS": {"WEIGHTS": [1, 2, 1]},       # one per LOCATION; all 1 if left out
}
```

A server is known to the hashing by its address and DB (``10.0.0.2:6379/1``,
``unix:///run/redis/redis.sock?db=1``), never by its password, scheme or
position: reordering LOCATION, or changing a password or a TLS setting,
moves no key. ``problems`` and ``doubts`` are what the system checks report
(E005, W009); a partitioned client refuses to start on a problem.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from . import hrw

LEAST_SHARE = 0.01  # a server given less than this share of the keys is probably a typo (W009)


@dataclass(frozen=True)
class Partition:
    locations: tuple[str, ...]
    nodes: tuple[hrw.Node, ...]

    def index_for(self, name: bytes) -> int:
        """Which server (an index into ``locations``) holds ``name``."""
        return hrw.choose(self.nodes, name)

    def shares(self) -> list[float]:
        return hrw.shares(self.nodes)


def identity(location: str) -> str:
    """A server's identity for hashing: its address and DB, without credentials or options."""
    parts = urlsplit(location)
    db = parse_qs(parts.query).get("db", [""])[0]
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={db or 0}"
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/") or db or "0"
        return f"{(parts.hostname or 'localhost').lower()}:{parts.port or 6379}/{db}"
    return location


def locations_of(server: str | Sequence[str]) -> list[str]:
    """LOCATION as django-redis reads it: a list, or a comma-separated string."""
    return server.split(",") if isinstance(server, str) else list(server)


def problems(server: Any, weights: Any) -> list[str]:
    """What makes LOCATION and WEIGHTS unusable together (empty when they are fine)."""
    if isinstance(server, (set, frozenset)) and weights is not None:
        return ["LOCATION is a set, whose order is arbitrary: make it a list so that WEIGHTS follow its order."]
    locations = locations_of(server)
    if not locations or not all(isinstance(location, str) and location for location in locations):
        return ["LOCATION must list the servers' URLs."]
    found: list[str] = []
    if weights is not None:
        if not isinstance(weights, (list, tuple)) or len(weights) != len(locations):
            return [f"WEIGHTS must be a list with one number per LOCATION ({len(locations)}), not {weights!r}."]
        for index, weight in enumerate(weights):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                found.append(f"WEIGHTS[{index}] is {weight!r}: a weight is a number.")
            elif weight <= 0:
                found.append(
                    f"WEIGHTS[{index}] is {weight!r}: a weight must be > 0 (to take a server out, remove it "
                    f"from LOCATION)."
                )
    seen: dict[str, int] = {}
    for index, location in enumerate(locations):
        name = identity(location)
        if name in seen:
            found.append(f"LOCATION names the server {name} twice (entries {seen[name]} and {index}).")
        seen.setdefault(name, index)
    return found


def doubts(server: Any, weights: Any) -> list[str]:
    """What is allowed but probably not meant (call only when ``problems`` found none)."""
    locations = locations_of(server)
    if len(locations) == 1:
        return ["LOCATION has a single server: there is nothing to partition."]
    partition = build(tuple(locations), None if weights is None else tuple(weights))
    return [
        f"WEIGHTS give {node.identity} {share:.2%} of the keys: is a weight mistyped?"
        for node, share in zip(partition.nodes, partition.shares(), strict=True)
        if share < LEAST_SHARE
    ]


def partition_of(server: Any, weights: Any) -> Partition:
    """The partition of LOCATION and WEIGHTS (``ImproperlyConfigured`` if they make no sense)."""
    found = problems(server, weights)
    if found:
        raise ImproperlyConfigured("Partitioned cache: " + " ".join(found))
    return build(tuple(locations_of(server)), None if weights is None else tuple(weights))


@functools.lru_cache(maxsize=64)
def build(locations: tuple[str, ...], weights: tuple[float, ...] | None) -> Partition:
    """Built once per process and settings (Django makes a client per thread)."""
    weights = weights or (1,) * len(locations)
    nodes = tuple(hrw.Node(identity(location), weight) for location, weight in zip(locations, weights, strict=True))
    return Partition(locations, nodes)
