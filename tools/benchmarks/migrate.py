"""What MIGRATE_FROM costs: a hit, a miss, a move per source engine, and the bulk copy rate.

    python -m tools.benchmarks.migrate [--sessions N] [--ops N]

One throwaway redis-server (ours on DB 0, old Redis stores on DB 1), a SQLite
database file and a session directory in a temp dir. Each source holds N
logged-in sessions written the old engine's way; ``move`` loads each of
``--ops`` of them through the fallback (each one a real move: read, create,
delete), ``hit`` loads them again (now in ours), ``miss`` loads keys in
neither store; then ``migratesessions`` moves the rest and its rate is
printed. Round trips are counted on the client sockets; database queries
with Django's query log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from io import StringIO
from typing import Any

import django
from django.conf import settings

from cache_sessions.testing import RedisServer
from tests.support.redis_stats import CountingConnection, sent_by_clients

LOGGED_IN = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "a3f1" * 16,
}
DJANGO = "django.contrib.sessions.backends."


def configure(url: str, directory: str) -> None:
    pool = {"connection_class": CountingConnection}
    settings.configure(
        SECRET_KEY="migrate-benchmark",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.sessions", "cache_sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(directory, "db.sqlite3")}},
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": f"{url}/0", "OPTIONS": {}},
            "old": {
                "BACKEND": "cache_sessions.cache.RedisCache",
                "LOCATION": f"{url}/1",
                "OPTIONS": {"USE_HASH": False},
            },
        },
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
        SESSION_FILE_PATH=os.path.join(directory, "files"),
    )
    django.setup()
    os.mkdir(settings.SESSION_FILE_PATH)
    for alias in ("sessions", "old"):
        settings.CACHES[alias]["OPTIONS"]["CONNECTION_POOL_KWARGS"] = pool


def fill(source: str, keys: list[str]) -> Any:
    """Write ``keys`` as logged-in sessions the old engine's way; the MIGRATE_FROM that reads them."""
    from django.contrib.sessions.backends.db import SessionStore as DbStore
    from django.contrib.sessions.models import Session
    from django.core.cache import caches
    from django.utils import timezone

    encoded = DbStore().encode(LOGGED_IN)
    if source == "db":
        expires = timezone.now() + timezone.timedelta(days=14)
        Session.objects.bulk_create(Session(session_key=k, session_data=encoded, expire_date=expires) for k in keys)
        return DJANGO + "db"
    if source == "file":
        for key in keys:
            with open(os.path.join(settings.SESSION_FILE_PATH, settings.SESSION_COOKIE_NAME + key), "w") as file:
                file.write(encoded)
        return DJANGO + "file"
    redis = caches["old"].client.get_client(write=True)
    if source == "redis_sessions":
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(f"session:{key}", encoded, ex=1209600)
        pipe.execute()
        return {"ENGINE": "redis_sessions.session", "ALIAS": "old", "PREFIX": "session"}
    if source == "ours-string":
        from cache_sessions.storage.registry import sessions_for

        old = sessions_for("old")
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(old.redis_key(key), old.codec.encode(LOGGED_IN), ex=1209600)
        pipe.execute()
        return "old"
    raise ValueError(source)


def per_op(run: Any, keys: list[str]) -> tuple[float, float, float]:
    """(median µs, round trips, queries) per load of each key."""
    from django.db import connection, reset_queries

    from cache_sessions.backend import SessionStore

    times, trips, queries = [], 0, 0
    connection.force_debug_cursor = True
    for key in keys:
        reset_queries()
        with sent_by_clients() as sent:
            started = time.perf_counter()
            run(SessionStore(key))
            times.append(time.perf_counter() - started)
        trips += sent.round_trips
        queries += len(connection.queries)
    connection.force_debug_cursor = False
    return statistics.median(times) * 1e6, trips / len(keys), queries / len(keys)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20000, help="sessions per source (default 20,000)")
    parser.add_argument("--ops", type=int, default=500, help="moves, hits and misses timed per source")
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="cache-sessions-migrate-")
    server = RedisServer(config={"hash-max-ziplist-value": "256"}).start()
    try:
        configure(server.url, directory)
        run(args.sessions, args.ops, server)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def run(count: int, ops: int, server: RedisServer) -> None:
    from django.core.cache import caches
    from django.core.management import call_command
    from django.test import override_settings

    from cache_sessions.keys import new_session_key

    call_command("migrate", verbosity=0)
    print(f"{server}; {count:,} logged-in sessions per source; medians of {ops} loads")
    print(f"{'source':<16}{'hit':>18}{'miss':>22}{'move':>22}{'bulk copy':>18}")
    for source in ("db", "file", "redis_sessions", "ours-string"):
        keys = [new_session_key() for _ in range(count)]
        migrate_from = fill(source, keys)
        cache = {**settings.CACHES["sessions"]}
        cache["OPTIONS"] = {**cache["OPTIONS"], "MIGRATE_FROM": migrate_from}
        with override_settings(CACHES={**settings.CACHES, "sessions": cache}):
            per_op(lambda s: s.load(), [new_session_key() for _ in range(20)])  # warm: scripts, connections
            move = per_op(lambda s: s.load(), keys[:ops])
            hit = per_op(lambda s: s.load(), keys[:ops])
            miss = per_op(lambda s: s.load(), [new_session_key() for _ in range(ops)])
            out = StringIO()
            started = time.perf_counter()
            call_command("migratesessions", "--batch-size", "1000", stdout=out)
            rate = (count - ops) / (time.perf_counter() - started)
            assert f" {count - ops} copied" in out.getvalue(), out.getvalue()

        def cell(measured: tuple[float, float, float]) -> str:
            micros, trips, queries = measured
            return f"{micros:,.0f} µs {trips:.0f} rt" + (f" {queries:.0f} q" if queries else "")

        print(f"{source:<16}{cell(hit):>18}{cell(miss):>22}{cell(move):>22}{rate:>12,.0f} /s")
        caches["sessions"].client.get_client().flushdb()


if __name__ == "__main__":
    main()
