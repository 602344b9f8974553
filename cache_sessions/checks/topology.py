"""System checks of the topologies: partitioned aliases and Sentinel services.

- E005 a partitioned alias whose LOCATION and WEIGHTS make no sense together
  (a weight that is not a number > 0, a count that does not match, a server
  listed twice);
- W009 weights that are allowed but probably not meant (a server given less
  than 1% of the keys, a single server), or WEIGHTS on an alias whose client
  does not read them;
- W010 the session alias is on a Sentinel service through a pool that does
  not follow failovers (django-redis's own Sentinel factory): the saves of
  the first seconds after a failover can be lost.

They read settings only (W010 builds the alias's client, which connects to
nothing), so they run whether or not the servers are up.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from redis.sentinel import SentinelConnectionPool

from ..topology import hrw
from ..topology.sentinel import FollowingPool
from ..topology.weights import doubts, problems

PARTITIONED = "cache_sessions.partitioned.PartitionedClient"
OUR_BACKEND = "cache_sessions.cache.RedisCache"


def _client_class(config: dict[str, Any]) -> str | None:
    options = config.get("OPTIONS") or {}
    if "CLIENT_CLASS" in options:
        return str(options["CLIENT_CLASS"])
    if config.get("BACKEND") == OUR_BACKEND:
        return PARTITIONED if "WEIGHTS" in options else None
    return None


@checks.register(checks.Tags.caches)
def check_weights(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for alias, config in getattr(settings, "CACHES", {}).items():
        weights = (config.get("OPTIONS") or {}).get("WEIGHTS")
        partitioned = _client_class(config) == PARTITIONED
        if not partitioned:
            if weights is not None:
                messages.append(
                    checks.Warning(
                        f"CACHES[{alias!r}] sets WEIGHTS, but its client does not partition: they are ignored.",
                        hint=f"Set OPTIONS['CLIENT_CLASS'] = {PARTITIONED!r}.",
                        id="cache_sessions.W009",
                    )
                )
            continue
        location = config.get("LOCATION", "")
        found = problems(location, weights)
        messages += [checks.Error(f"CACHES[{alias!r}]: {problem}", id="cache_sessions.E005") for problem in found]
        if not found:
            doubted = doubts(location, weights)
            prefix = str(config.get("KEY_PREFIX", ""))
            if hrw.route_key(prefix.encode() + b"x") != prefix.encode() + b"x":
                doubted.append(f"KEY_PREFIX {prefix!r} holds a {{hash tag}}: every key would go to one server.")
            messages += [checks.Warning(f"CACHES[{alias!r}]: {doubt}", id="cache_sessions.W009") for doubt in doubted]
    return messages


@checks.register(checks.Tags.caches)
def check_sentinel_follows_failovers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "SESSION_ENGINE", None) != "cache_sessions.backend":
        return []
    alias = settings.SESSION_CACHE_ALIAS
    try:
        cache: Any = caches[alias]
        pool = cache.client.get_client(write=True).connection_pool
    except Exception:  # the session alias's own check (E001) reports it
        return []
    if not isinstance(pool, SentinelConnectionPool) or isinstance(pool, FollowingPool):
        return []
    return [
        checks.Warning(
            f"CACHES[{alias!r}] is on a Sentinel service through a pool that does not follow failovers: "
            f"after a failover, writes keep reaching the old primary until Sentinel demotes it, and those "
            f"saves are lost.",
            hint="Use BACKEND 'cache_sessions.cache.RedisCache' with SENTINELS (or OPTIONS['CLIENT_CLASS'] = "
            "'cache_sessions.sentinel.SentinelSessionClient') and no CONNECTION_FACTORY of your own.",
            id="cache_sessions.W010",
        )
    ]
