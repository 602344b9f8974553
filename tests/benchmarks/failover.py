"""What a Sentinel failover costs the sessions saved through it (not part of ``make test``).

    python -m tests.benchmarks.failover [--rounds R] [--no-pause] [--kill]

Starts a 1 primary + 1 replica + 3 sentinels group (down-after 1,000 ms) and,
each round, runs save loops (``tests/failover.py``) in both modes on two
aliases at once: cache_sessions' Sentinel client (follows ``+switch-master``,
pauses on ``+selected-slave``), and django-redis's documented Sentinel setup
(``SentinelClient`` + ``SentinelConnectionFactory``), which is how sessions
reached a Sentinel service before. Then ``SENTINEL FAILOVER`` (or, with
``--kill``, SIGKILL of the primary), 2 s more of saves after the switch, and
the count: acknowledged saves lost, errors, the error window.
``--no-pause`` follows ``+switch-master`` only (what the pause adds).
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

from cache_sessions import follower  # noqa: E402
from tests import sentinels  # noqa: E402
from tests.failover import SaveLoop  # noqa: E402
from tests.fault_servers import crash  # noqa: E402

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
STOCK = {
    "CLIENT_CLASS": "django_redis.client.SentinelClient",
    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
}


def caches_for(group: sentinels.SentinelGroup, check_port: int) -> dict[str, Any]:
    def alias(db: int, use_hash: bool, **options: Any) -> dict[str, Any]:
        return {
            "BACKEND": "cache_sessions.cache.RedisCache",
            "LOCATION": group.location(db),
            "OPTIONS": {"SENTINELS": group.addresses, "USE_HASH": use_hash, "SOCKET_TIMEOUT": 1, **options},
        }

    def check(db: int, use_hash: bool) -> dict[str, Any]:
        return {
            "BACKEND": "cache_sessions.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{check_port}/{db}",
            "OPTIONS": {"USE_HASH": use_hash},
        }

    return {
        "default": LOCMEM,
        "ours-string": alias(5, False),
        "ours-hash": alias(6, True),
        "stock-string": alias(7, False, **STOCK),
        "stock-hash": alias(8, True, **STOCK),
        **{f"check-{name}": check(db, name.endswith("hash")) for name, db in MODES.items()},
    }


MODES = {"ours-string": 5, "ours-hash": 6, "stock-string": 7, "stock-hash": 8}


def one_round(group: sentinels.SentinelGroup, kill: bool) -> list[dict[str, Any]]:
    group.ready()
    old = group.primary()
    new = group.replica()
    with override_settings(CACHES=caches_for(group, new.port)):
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
            group.sentinel().execute_command("SENTINEL", "FAILOVER", sentinels.SERVICE)
        while group.role(new) != "master" or group.primary() is not new:
            time.sleep(0.01)
        switched = time.monotonic() - started
        time.sleep(2.0)
        for loop in loops:
            loop.finish()
        results = [{**loop.summary(f"check-{loop.alias}"), "promoted after (s)": round(switched, 2)} for loop in loops]
        for db in MODES.values():
            from redis import Redis

            Redis(port=new.port, db=db).flushdb()
    if kill:  # back as a replica of the new primary
        sentinels.restart_as_replica(old, new)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pause", action="store_true", help="follow +switch-master only")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the primary instead of SENTINEL FAILOVER")
    args = parser.parse_args()
    if args.no_pause:
        follower.PAUSE_SECONDS = 0.0
    group = sentinels.group()
    try:
        for number in range(args.rounds):
            for result in one_round(group, args.kill):
                print(f"round {number + 1}: {result}", flush=True)
            if not args.kill:
                time.sleep(2 * sentinels.FAILOVER_TIMEOUT_MS / 1000)
    finally:
        group.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
