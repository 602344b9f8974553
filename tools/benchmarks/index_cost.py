"""What one user's many sessions cost Redis, and what a paused server does to a pipelined logout.

    python -m tools.benchmarks.index_cost [--logins 2000 4000] [--mode hash|string] [--max N]

On one throwaway server (SLOWLOG on every command), for each ``--logins`` N:
one user logs in N times (a session created with the user in it, the way
``login()``'s ``cycle_key`` creates it), then ``revoke_all_sessions``. Printed:
the wall time of the logins and of the revoke, and what Redis spent inside
the index scripts (SLOWLOG durations: the longest call, and the sum), for
the logins and for the revoke. ``--max`` sets ``USER_SESSIONS_MAX``.

Then a pipelined logout under ``CLIENT PAUSE`` (``SOCKET_TIMEOUT`` 0.2 s,
``RETRY`` 2): a pause of 1 s (longer than every retry) and of 0.3 s (a retry
gets through). Printed: what the logout raised or did, and how long it took.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import django
from django.conf import settings
from redis import exceptions as redis_errors

from cache_sessions.testing import RedisServer

USER = "42"
LOGGED_IN = {"_auth_user_id": USER, "_auth_user_backend": "django.contrib.auth.backends.ModelBackend"}
SCRIPTS = (b"EVAL", b"EVALSHA")


def configure(url: str, mode: str, cap: int | None) -> None:
    options: dict[str, Any] = {"USE_HASH": mode == "hash", "USER_SESSIONS": True, "USER_SESSION_METADATA": True}
    if cap is not None:
        options["USER_SESSIONS_MAX"] = cap
    settings.configure(
        SECRET_KEY="index-benchmark",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.sessions", "cache_sessions"],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": f"{url}/0", "OPTIONS": options},
            "paused": {
                "BACKEND": "cache_sessions.cache.RedisCache",
                "LOCATION": f"{url}/1",
                "OPTIONS": {**options, "SOCKET_TIMEOUT": 0.2, "RETRY": 2},
            },
        },
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
    )
    django.setup()


def script_times(redis: Any) -> list[float]:
    """Microseconds of each script call SLOWLOG kept since the last reset."""
    entries = redis.slowlog_get(1_000_000)
    return [entry["duration"] for entry in entries if entry["command"].split(b" ", 1)[0].upper() in SCRIPTS]


def idle(redis: Any) -> Any:
    """``redis`` once it answers again (a script that outran the client's patience may still run)."""
    while True:
        try:
            redis.ping()
            return redis
        except redis_errors.BusyLoadingError:
            time.sleep(0.1)
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("BUSY"):
                raise
            time.sleep(0.1)


def many_logins(redis: Any, logins: int) -> None:
    from cache_sessions import users
    from cache_sessions.backend import SessionStore

    redis.flushall()
    redis.slowlog_reset()
    started = time.perf_counter()
    for _ in range(logins):
        store = SessionStore()
        store.update(LOGGED_IN)
        store.create()
    login_seconds = time.perf_counter() - started
    login_times = script_times(redis)
    redis.slowlog_reset()
    started = time.perf_counter()
    try:
        ended: Any = users.revoke_all_sessions(USER)
    except Exception as exc:
        ended = f"raised {type(exc).__name__} ({str(exc)[:50]}); "
    revoke_seconds = time.perf_counter() - started
    revoke_times = script_times(idle(redis))
    print(
        f"{logins} logins: {login_seconds:.2f} s, index scripts longest {max(login_times) / 1000:.2f} ms, "
        f"sum {sum(login_times) / 1e6:.2f} s | revoke_all_sessions: {ended} ended in {revoke_seconds * 1000:.1f} ms, "
        f"scripts longest {max(revoke_times or [0]) / 1000:.2f} ms, sum {sum(revoke_times) / 1000:.2f} ms"
    )


def paused_logout(redis: Any, pause_ms: int) -> None:
    from django.test import override_settings

    from cache_sessions.backend import SessionStore

    with override_settings(SESSION_CACHE_ALIAS="paused"):
        store = SessionStore()
        store.update(LOGGED_IN)
        store.create()
        key = store.session_key
        store = SessionStore(key)
        store.load()  # an indexed session as a request loads it: its logout is one pipeline
        pause = threading.Timer(0, redis.execute_command, ("CLIENT", "PAUSE", pause_ms))
        pause.start()
        pause.join()
        started = time.perf_counter()
        try:
            store.flush()
            outcome = "logged out" if SessionStore(key).load() == {} else "STILL LOGGED IN"
        except Exception as exc:
            outcome = f"raised {type(exc).__name__}: {str(exc)[:60]}"
        seconds = time.perf_counter() - started
    print(f"logout under CLIENT PAUSE {pause_ms} ms: {outcome} after {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--mode", choices=("hash", "string"), default="hash")
    parser.add_argument("--max", type=int, default=None, help="USER_SESSIONS_MAX (default: the engine's)")
    arguments = parser.parse_args()
    with RedisServer(config={"slowlog-log-slower-than": "0", "slowlog-max-len": "1000000"}) as server:
        configure(server.url, arguments.mode, arguments.max)
        import redis as redis_py

        control = redis_py.Redis.from_url(server.url)
        print(f"{server}, {arguments.mode} mode")
        for logins in arguments.logins:
            many_logins(control, logins)
        for pause_ms in (1000, 300):
            paused_logout(redis_py.Redis.from_url(server.url), pause_ms)


if __name__ == "__main__":
    main()
