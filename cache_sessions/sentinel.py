"""Sessions on a Sentinel service that survive a failover.

```python
CACHES["sessions"] = {
    "BACKEND": "cache_sessions.cache.RedisCache",
    "LOCATION": "redis://mymaster/1",               # the service name and the DB
    "OPTIONS": {"SENTINELS": [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26379)]},
}
```

With ``SENTINELS`` our backend picks ``SentinelSessionClient``: django-redis's
``SentinelClient`` (an alias on a Sentinel service) and our ``SessionClient``
in one class, whose connection factory (``SentinelConnectionFactory``:
django-redis's Sentinel factory, with our pool class ``FollowingPool`` and
primary discovery ``NewestSentinel``) makes pools that follow a failover as
soon as the sentinels announce it. They live in ``topology/sentinel.py`` with
``SentinelTopology`` (what a failure means on a primary that moves); this
module is their public home.
"""

from __future__ import annotations

from typing import Any

from django_redis.client import SentinelClient

from .client import SessionClient
from .topology.sentinel import POOL, FollowingPool, NewestSentinel, SentinelConnectionFactory, SentinelTopology

__all__ = ["FACTORY", "POOL", "FollowingPool", "NewestSentinel", "SentinelConnectionFactory", "SentinelSessionClient"]

FACTORY = "cache_sessions.sentinel.SentinelConnectionFactory"


class SentinelSessionClient(SentinelClient, SessionClient):
    """A django-redis Sentinel client with cache_sessions' records, whose pools follow failovers."""

    topology_class = SentinelTopology

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        options = params.get("OPTIONS") or {}
        if "CONNECTION_FACTORY" not in options:
            params = {**params, "OPTIONS": {**options, "CONNECTION_FACTORY": FACTORY}}
        super().__init__(server, params, backend)
