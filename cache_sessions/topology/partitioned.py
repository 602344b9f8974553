"""Several independent servers, by weight, as a topology: each name lives on the server
that weighted rendezvous hashing picks for it (``hrw.py``, ``weights.py``).

The alias's client (``cache_sessions.partitioned.PartitionedClient``) keeps a
client per server and knows the partition; this topology asks it. Hash mode's
names are buckets (so a bucket and its overflow keys stay together), string
mode's are session keys. Sweeps, statistics and checks walk every server. A
failure means what it means on one server: no primary moves here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .base import Topology

if TYPE_CHECKING:
    from redis import Redis


class PartitionedTopology(Topology):
    """Names on the server weighted rendezvous hashing picks; every server walked."""

    def redis(self) -> Redis:
        raise TypeError("A partitioned alias has a client per server: use redis_for(name) or servers().")

    def redis_for(self, name: bytes) -> Redis:
        return self.client.server_for(name)  # type: ignore[no-any-return]

    def servers(self) -> list[Redis]:
        return self.client.servers()  # type: ignore[no-any-return]

    def by_server(self, names: Iterable[bytes]) -> list[tuple[Redis, list[bytes]]]:
        return self.client.by_server(names)  # type: ignore[no-any-return]
