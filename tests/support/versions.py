"""Which releases a test run uses, on one line: ``python -m tests.support.versions`` (``make versions``).

CI prints it at the end of each leg, so that its log says what each leg ran
(the legs install the newest releases, or the declared minimums); pytest's
header shows the same line at the start of a run.
"""

from __future__ import annotations

import platform
from importlib import metadata

from cache_sessions.testing import find_redis_server, server_version

PACKAGES = ("django", "django-redis", "redis", "hiredis", "msgpack", "msgspec", "python-snappy")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def server() -> str:
    """``Redis 7.0.15 (/usr/bin/redis-server)``: the server the tests start."""
    binary = find_redis_server()
    family, version = server_version(binary)
    return f"{family.capitalize()} {'.'.join(map(str, version))} ({binary})"


def line() -> str:
    packages = ", ".join(f"{package} {_version(package)}" for package in PACKAGES)
    return f"Python {platform.python_version()}, {packages}; server {server()}"


if __name__ == "__main__":
    print(line())
