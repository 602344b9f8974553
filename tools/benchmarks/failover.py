"""What a Sentinel failover costs the sessions saved through it (not part of ``make test``).

    python -m tools.benchmarks.failover [--rounds R] [--replicas N] [--no-pause] [--kill]

Starts the tests' group (``tests/support/sentinels.py``: 1 primary + 2 replicas, or
``--replicas``, + 3 sentinels, quorum 2, down-after 1,000 ms, failover-timeout
5,000 ms) and, each round, runs save loops (``tests/support/failover.py``) in both
modes on two aliases at once: cache_sessions' Sentinel client (follows ``+switch-master``, pauses
on ``+selected-slave``), and django-redis's documented Sentinel setup
(``SentinelClient`` + ``SentinelConnectionFactory``), which is how sessions
reached a Sentinel service before. Then ``SENTINEL FAILOVER`` sent to each
sentinel in turn (round 1 to the first of ``SENTINELS``, round 2 to the
second...) or, with ``--kill``, SIGKILL of the primary; 2 s more of saves
after the leader has finished the failover, and the count: acknowledged saves
lost, errors, the error window. ``--no-pause`` follows ``+switch-master``
only (what the pause adds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.test import override_settings  # noqa: E402
from redis import Redis  # noqa: E402

from cache_sessions.topology import follower  # noqa: E402
from tests.support import sentinels  # noqa: E402
from tests.support.failover import SaveLoop  # noqa: E402
from tests.support.fault_servers import crash  # noqa: E402

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
STOCK = {
    "CLIENT_CLASS": "django_redis.client.SentinelClient",
    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
}


def caches_for(group: sentinels.SentinelGroup) -> dict[str, Any]:
    def alias(db: int, use_hash: bool, **options: Any) -> dict[str, Any]:
        return {
            "BACKEND": "cache_sessions.cache.RedisCache",
            "LOCATION": group.location(db),
            "OPTIONS": {"SENTINELS": group.addresses, "USE_HASH": use_hash, "SOCKET_TIMEOUT": 1, **options},
        }

    def check(port: int, db: int, use_hash: bool) -> dict[str, Any]:
        return {
            "BACKEND": "cache_sessions.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/{db}",
            "OPTIONS": {"USE_HASH": use_hash},
        }

    checks = {
        f"check-{server.port}-{name}": check(server.port, db, name.endswith("hash"))
        for server in group.data
        for name, db in MODES.items()
    }
    return {
        "default": LOCMEM,
        "ours-string": alias(5, False),
        "ours-hash": alias(6, True),
        "stock-string": alias(7, False, **STOCK),
        "stock-hash": alias(8, True, **STOCK),
        **checks,
    }


MODES = {"ours-string": 5, "ours-hash": 6, "stock-string": 7, "stock-hash": 8}


def one_round(group: sentinels.SentinelGroup, kill: bool, leader: int) -> list[dict[str, Any]]:
    group.ready()
    old = group.primary()
    with override_settings(CACHES=caches_for(group)):
        loops = [SaveLoop(alias) for alias in MODES]
        for loop in loops:
            loop.prepare()
        for loop in loops:
            loop.start()
        time.sleep(0.5)
        started = time.monotonic()
        if kill:
            crash(old)
        else:
            group.sentinel(leader).execute_command("SENTINEL", "FAILOVER", sentinels.SERVICE)
        while not group.failed_over(old):
            time.sleep(0.01)
        switched = time.monotonic() - started
        time.sleep(2.0)
        for loop in loops:
            loop.finish()
        new = group.primary()
        figures = {"leader": "kill" if kill else leader, "failover took (s)": round(switched, 2)}
        results = [{**loop.summary(f"check-{new.port}-{loop.alias}"), **figures} for loop in loops]
        for db in MODES.values():
            Redis(port=new.port, db=db).flushdb()
    if kill:  # back as a replica of the new primary
        sentinels.restart_as_replica(old, new)
    else:  # what Sentinel does ~10 s after the switch: the next round need not wait for it
        sentinels.follow(old, new)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pause", action="store_true", help="follow +switch-master only")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the primary instead of SENTINEL FAILOVER")
    parser.add_argument("--replicas", type=int, default=sentinels.REPLICAS, help="replicas of the primary")
    args = parser.parse_args()
    if args.no_pause:
        follower.PAUSE_SECONDS = 0.0
    group = sentinels.SentinelGroup(replicas=args.replicas)
    try:
        for number in range(args.rounds):
            for result in one_round(group, args.kill, leader=number % len(group.sentinels)):
                print(f"round {number + 1}: {result}", flush=True)
    finally:
        group.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
