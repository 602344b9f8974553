"""What a hash-mode alias's servers would do better with, for the system checks and
``cleanuprs --stats``: the write path each server gets (field TTLs or the script), and
whether a logged-in session fits the server's ``hash-max-listpack-value``.

The sizes are those of sessions made here, with the alias's codec, not a sample of
stored ones: a new or small site, whose sample is empty, gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..topology import server_facts

if TYPE_CHECKING:
    from .buckets import HashStorage

RECOMMENDED_VALUE_LIMIT = 256  # room for a logged-in session with a CSRF token and a message
EXPIRY_BYTES = 4  # what the script layout adds to each value's header

# A session as django.contrib.auth leaves it after a login (the session hash is a SHA-256 hex).
LOGGED_IN: dict[str, Any] = {
    "_auth_user_id": "48213",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "9f2c" * 16,
}
# ...with CSRF_USE_SESSIONS' token and a message of contrib.messages waiting to be shown.
BUSY = {
    **LOGGED_IN,
    "_csrftoken": "Qm3xZ0a9" * 4,
    "_messages": '[["__json_message",0,25,"The change was saved successfully."]]',
}


@dataclass(frozen=True)
class ServerAdvice:
    label: str
    software: server_facts.Software
    field_ttls: bool  # what this alias's writes use there
    value_limit: int | None  # hash-max-listpack-value (None: CONFIG refused)
    sizes: tuple[int, int]  # bytes of LOGGED_IN and BUSY as this alias stores them

    def lines(self, forced: bool | None) -> list[str]:
        """What to tell a human about this server."""
        lines = [f"{self.label}: {self.software}, writes: {self.path(forced)}"]
        logged_in, busy = self.sizes
        limit = self.value_limit
        sizes = f"a logged-in session is {logged_in} bytes here, {busy} with a CSRF token and a message"
        if limit is None:
            lines.append(f"  {sizes}; hash-max-listpack-value could not be read (CONFIG refused)")
        elif busy <= limit:
            lines.append(f"  {sizes}: both fit hash-max-listpack-value {limit}")
        else:
            which = "both overflow" if logged_in > limit else "the second overflows"
            lines.append(
                f"  {sizes}: {which} hash-max-listpack-value {limit} (a key of its own each, more memory, and "
                f"loads fetch the overflow key with the field); set hash-max-listpack-value "
                f"{max(RECOMMENDED_VALUE_LIMIT, busy)} to keep them in their buckets"
            )
        return lines

    def path(self, forced: bool | None) -> str:
        if self.field_ttls:
            return "field TTLs (HSETEX, no script, nothing to sweep)" + (
                "" if self.software.version else "; FIELD_TTL=True, the script if the server has no HSETEX"
            )
        if self.software.compact_field_ttls:
            return "the script (FIELD_TTL=False; None would use field TTLs, about a fifth of the Redis CPU per save)"
        if forced and self.software.hsetex is False:
            return "the script (FIELD_TTL=True, but the server has no HSETEX)"
        if self.software.hsetex:
            return "the script (field TTLs would turn buckets into hashtables here: FIELD_TTL=True to use them anyway)"
        return "the script (field TTLs need Redis 8)"


def advise(sessions: HashStorage, servers: list[Any] | None = None) -> list[ServerAdvice]:
    """Ask each server (every time: checks and stats must see a changed server)."""
    forced = sessions.options.field_ttl
    advice = []
    for redis in sessions.servers() if servers is None else servers:
        software = server_facts.read_software(redis)
        uses = software.field_ttls(forced)
        limit = sessions.options.hash_max_inline or server_facts.read_listpack_limits(redis)[1]
        extra = 0 if uses else EXPIRY_BYTES
        sizes = (len(sessions.codec.encode(LOGGED_IN)) + extra, len(sessions.codec.encode(BUSY)) + extra)
        advice.append(ServerAdvice(label(redis), software, uses, limit, sizes))
    return advice


def label(redis: Any) -> str:
    """A server as the reports name it: ``10.0.0.2:6379/1``, ``unix:///run/redis.sock?db=1``,
    ``mymaster/1 (Sentinel)``; never its password."""
    pool: Any = redis.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if getattr(pool, "service_name", None):
        return f"{pool.service_name}/{db} (Sentinel)"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
