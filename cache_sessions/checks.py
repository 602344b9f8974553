"""System checks: the session alias is configured the way the engine needs.

They run at startup (``manage.py check``, ``runserver``, ``migrate``) so a
misconfiguration is reported before the first request, not during it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import get_random_string
from redis.exceptions import RedisError

ENGINE = "cache_sessions.backend"
# A logged-in session takes ~85 bytes in a bucket; leave room for a few more entries.
RECOMMENDED_VALUE_LIMIT = 256
RECOMMENDED_ENTRIES_LIMIT = 512


@checks.register(checks.Tags.caches)
def check_session_alias(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "SESSION_ENGINE", None) != ENGINE:
        return []
    from .buckets import HashSessions
    from .client import sessions_for

    alias = settings.SESSION_CACHE_ALIAS
    try:
        sessions = sessions_for(alias)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="cache_sessions.E001")]
    sample, other = (get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(2))
    try:
        # locate() remembers its last key: ask for another one in between.
        first, _, second = sessions.locate(sample), sessions.locate(other), sessions.locate(sample)
    except Exception as exc:  # a user's generator can fail any way it likes
        return [
            checks.Error(
                f"A key generator of CACHES[{alias!r}] fails on a session key: {exc!r}", id="cache_sessions.E002"
            )
        ]
    if first != second:
        return [checks.Error(f"A key generator of CACHES[{alias!r}] is not deterministic.", id="cache_sessions.E002")]
    if isinstance(sessions, HashSessions):
        return check_listpack_limits(alias, sessions)
    return []


def check_listpack_limits(alias: str, sessions: Any) -> list[checks.CheckMessage]:
    """Warn when the server's listpack limits keep buckets from the compact encoding."""
    from .buckets import read_listpack_limits

    try:
        entries, value = read_listpack_limits(sessions.redis())
    except RedisError as exc:
        return [checks.Info(f"Could not read the Redis config of CACHES[{alias!r}]: {exc}", id="cache_sessions.I001")]
    messages: list[checks.CheckMessage] = []
    if value is None and sessions.options.hash_max_inline is None:
        messages.append(
            checks.Warning(
                f"Could not read hash-max-listpack-value of CACHES[{alias!r}] (CONFIG is disabled or renamed): "
                f"sessions over 64 bytes, Redis's default limit, will be kept out of their buckets.",
                hint="Set OPTIONS['HASH_MAX_INLINE'] to the server's hash-max-listpack-value.",
                id="cache_sessions.W003",
            )
        )
    if value is not None and value < RECOMMENDED_VALUE_LIMIT and sessions.options.hash_max_inline is None:
        messages.append(
            checks.Warning(
                f"Redis hash-max-listpack-value is {value}: sessions larger than {value} bytes are kept out of "
                f"their buckets (under keys of their own), which costs memory.",
                hint=f"Set hash-max-listpack-value {RECOMMENDED_VALUE_LIMIT} in redis.conf "
                f"(or CONFIG SET hash-max-listpack-value {RECOMMENDED_VALUE_LIMIT}).",
                id="cache_sessions.W001",
            )
        )
    if entries is not None and entries < RECOMMENDED_ENTRIES_LIMIT:
        messages.append(
            checks.Warning(
                f"Redis hash-max-listpack-entries is {entries}: a bucket with more sessions than that is "
                f"converted to a hashtable and uses several times the memory.",
                hint=f"Set hash-max-listpack-entries {RECOMMENDED_ENTRIES_LIMIT} (or more), or raise BUCKETS.",
                id="cache_sessions.W002",
            )
        )
    return messages
