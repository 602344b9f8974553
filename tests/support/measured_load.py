"""Load one session in a fresh process, under a cap on its address space, and
print what it cost as JSON::

    python -m tests.support.measured_load \
        '{"location": "redis://...", "use_hash": false, "key": "...", "headroom": 536870912}'

prints ``{"entries": 0, "key_kept": false, "warnings": [...], "seconds": 0.01, "peak_growth_mib": 0.4}``
(or ``"error"`` instead of ``entries`` when the load raised). The hostile-value
tests run loads here so that an unbounded decoder exhausts this process's
``headroom`` (``RLIMIT_AS``), not the test runner or the machine.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from typing import Any


def address_space() -> int:
    """This process's virtual memory size, in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:300])


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="measured-load",
        USE_TZ=True,
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {
                "BACKEND": "cache_sessions.cache.RedisCache",
                "LOCATION": spec["location"],
                "OPTIONS": {"USE_HASH": spec["use_hash"]},
            },
        },
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
    )
    django.setup()
    from cache_sessions.backend import SessionStore
    from cache_sessions.format.codec import Codec

    warnings = Collect()
    logging.getLogger("django.security.SuspiciousSession").addHandler(warnings)
    # Warm up (connection, scripts, every decompressor) so that only the hostile value is measured.
    SessionStore("0" * 32).load()
    codec = SessionStore()._storage.codec
    for library in ("zlib", "snappy"):
        codec.decode(Codec(library, 0).encode({"x": "y" * 500}))

    cap = address_space() + spec["headroom"]
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    before, started = peak_rss_mib(), time.monotonic()
    session = SessionStore(spec["key"])
    try:
        loaded = session.load()
        outcome: dict[str, Any] = {"entries": len(loaded), "key_kept": session.session_key is not None}
    except BaseException as exc:  # a MemoryError, say: report it, whatever it is
        outcome = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    outcome["seconds"] = time.monotonic() - started
    outcome["peak_growth_mib"] = peak_rss_mib() - before
    outcome["warnings"] = warnings.messages
    return outcome


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
