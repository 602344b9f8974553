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

ENGINE = "cache_sessions.backend"


@checks.register(checks.Tags.caches)
def check_session_alias(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "SESSION_ENGINE", None) != ENGINE:
        return []
    from .client import sessions_for

    alias = settings.SESSION_CACHE_ALIAS
    try:
        sessions = sessions_for(alias)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="cache_sessions.E001")]
    sample = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    try:
        first, second = sessions.redis_key(sample), sessions.redis_key(sample)
    except Exception as exc:  # a user's KEY_GENERATOR can fail any way it likes
        return [
            checks.Error(
                f"KEY_GENERATOR of CACHES[{alias!r}] fails on a session key: {exc!r}", id="cache_sessions.E002"
            )
        ]
    if first != second:
        return [checks.Error(f"KEY_GENERATOR of CACHES[{alias!r}] is not deterministic.", id="cache_sessions.E002")]
    return []
