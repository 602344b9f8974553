"""Weighted rendezvous hashing (HRW): which of several servers holds a name.

Every server draws a score for every name, ``weight / -ln(u)``, where ``u``
is a uniform hash of (server, name) in (0, 1); the highest score wins (the
"logarithmic method" of weighted rendezvous hashing). A server's share of the
names is its share of the total weight, and a change of the set moves as few
names as possible: a new server takes only the names it now wins (its fair
share, taken from every other server alike), a removed server gives away
only its own names, a changed weight moves names only to or from that
server. Nothing here depends on the order of the servers.

Pure and stable across processes and machines (BLAKE2b, never ``hash()``).
A name with a ``{hash tag}`` is placed by the tag alone (the Redis Cluster
rule), so ``h{2f3a}`` and its overflow keys ``h{2f3a}:<field>`` share a server,
and cache keys can be kept together on purpose (``{cart:7}:items``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_UNIT = 2.0**-52  # the 52 high bits of a hash, + 0.5, times this: strictly inside (0, 1)


def route_key(name: bytes) -> bytes:
    """What places ``name``: the part between its first ``{`` and the next ``}`` when that
    is not empty (Redis Cluster's hash tag), else the whole name."""
    start = name.find(b"{")
    if start >= 0:
        end = name.find(b"}", start + 1)
        if end > start + 1:
            return name[start + 1 : end]
    return name


@dataclass(frozen=True)
class Node:
    """A server as HRW sees it: a stable identity (never its password) and a weight > 0."""

    identity: str
    weight: float
    _hasher: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"the weight of {self.identity} must be a finite number > 0, not {self.weight!r}")
        seed = hashlib.blake2b(self.identity.encode(), digest_size=16).digest()
        # Setting up a keyed BLAKE2b costs far more than copying one: set it up once.
        object.__setattr__(self, "_hasher", hashlib.blake2b(digest_size=8, key=seed))

    def score(self, key: bytes) -> float:
        hasher = self._hasher.copy()
        hasher.update(key)
        uniform = ((int.from_bytes(hasher.digest(), "big") >> 12) + 0.5) * _UNIT
        return self.weight / -math.log(uniform)


def choose(nodes: Sequence[Node], name: bytes) -> int:
    """The index in ``nodes`` of the server that holds ``name``."""
    key = route_key(name)
    best, best_score = 0, -1.0
    for index, node in enumerate(nodes):
        score = node.score(key)
        if score > best_score:
            best, best_score = index, score
    return best


def shares(nodes: Sequence[Node]) -> list[float]:
    """The share of names each server should get: its weight over the total."""
    total = sum(node.weight for node in nodes)
    return [node.weight / total for node in nodes]
