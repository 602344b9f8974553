"""System check of MIDDLEWARE: one session middleware.

- E006 ``MIDDLEWARE`` lists more than one session middleware: Django's
  ``SessionMiddleware`` or any subclass of it, ours included (counted once
  per entry). Each of them puts a store of its own on ``request.session`` and
  saves it at the end of the request, so a request that changes the session
  saves it twice; and ours loses its answers to an outage: Django's, outside
  ours, saves (and so loads) again a session the store could not serve and
  answers 500; inside ours, its store replaces ours, which never gets the
  ``DEGRADED_READS`` page.

It reads settings only, so it runs whether or not Redis is up.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core import checks
from django.utils.module_loading import import_string

OURS = "cache_sessions.middleware.SessionMiddleware"


@checks.register
def check_session_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found = [entry for entry in getattr(settings, "MIDDLEWARE", None) or [] if _is_session_middleware(entry)]
    if len(found) < 2:
        return []
    return [
        checks.Error(
            f"MIDDLEWARE has {len(found)} session middlewares ({', '.join(map(repr, found))}): each one saves "
            f"the session at the end of the request, so every change is written twice, and a Redis outage "
            f"gets 500s (or 503s where DEGRADED_READS would serve the page) instead of cache_sessions' answers.",
            hint=f"Keep one: {OURS!r} (or your subclass of it), where Django's was.",
            id="cache_sessions.E006",
        )
    ]


def _is_session_middleware(entry: Any) -> bool:
    try:
        middleware = import_string(entry) if isinstance(entry, str) else entry
    except Exception:  # a check reports; it never takes manage.py down (Django reports a bad path itself)
        return False
    return isinstance(middleware, type) and issubclass(middleware, DjangoSessionMiddleware)
