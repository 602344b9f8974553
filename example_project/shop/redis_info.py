"""Redis facts put in words for people: server names, durations, key names."""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone


def server_name(info: dict[str, Any]) -> str:
    """``Valkey 9.1.2`` or ``Redis 7.0.15``, from ``INFO server``.

    Valkey also reports a ``redis_version`` (the Redis version it is
    compatible with, 7.2.4): its own number is ``valkey_version``.
    """
    if info.get("server_name") == "valkey":
        return f"Valkey {info.get('valkey_version', '?')}"
    return f"Redis {info.get('redis_version', '?')}"


def address(connection_kwargs: dict[str, Any]) -> dict[str, str]:
    """Where a redis-py connection pool connects: ``{"kind": ..., "where": ..., "db": ...}``."""
    db = str(connection_kwargs.get("db", 0))
    if connection_kwargs.get("path"):
        return {"kind": "unix socket", "where": connection_kwargs["path"], "db": db}
    return {"kind": "address", "where": f"{connection_kwargs.get('host')}:{connection_kwargs.get('port')}", "db": db}


def duration(seconds: float) -> str:
    """``13 days, 23 hours``: the largest unit, and the next one down when it is not zero."""
    seconds = max(0, int(seconds))
    counts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        counts.append((count, f"{count} {name}{'' if count == 1 else 's'}"))
    first = next((i for i, (count, _) in enumerate(counts) if count), len(counts) - 1)
    return ", ".join(text for count, text in counts[first : first + 2] if count) or "0 seconds"


def when(expires_at: float) -> dict[str, str]:
    """An absolute expiry (Unix seconds) as ``in 13 days, 23 hours`` plus the date and time."""
    moment = datetime.datetime.fromtimestamp(expires_at, tz=datetime.UTC)
    left = expires_at - timezone.now().timestamp()
    relative = f"in {duration(left)}" if left > 0 else f"{duration(-left)} ago"
    local = timezone.localtime(moment)
    return {"relative": relative, "absolute": f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"}


def ttl(seconds: int) -> dict[str, str]:
    """A Redis TTL reply in words: ``-1`` no expiry, ``-2`` no such key."""
    if seconds == -2:
        return {"relative": "no such key", "absolute": ""}
    if seconds == -1:
        return {"relative": "never (no TTL)", "absolute": ""}
    return {**when(timezone.now().timestamp() + seconds), "seconds": str(seconds)}


def printable(name: bytes) -> str:
    """A Redis name as text: printable ASCII as it is, every other byte as ``\\xNN``.

    A backslash is doubled, so the text maps back to exactly one name. Bytes
    past ASCII are escaped too: the binary digests in our names often happen
    to form valid UTF-8 for some rare letter, shown as a blank box.
    """
    out = []
    for byte in name:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def encoding(name: bytes | str | None) -> str:
    """A hash's ``OBJECT ENCODING``, with Redis 6.2's name for listpack explained."""
    text = name.decode() if isinstance(name, bytes) else (name or "")
    if text == "ziplist":
        return "listpack (Redis 6.2 calls it ziplist)"
    return text
