"""System checks of the alias's OPTIONS.

- W004 an OPTIONS name neither cache_sessions nor Django/django-redis knows
  (with the likely intended one);
- E003 ``MIGRATE_FROM`` names a store the engine cannot read (an unknown
  engine or parameter, a missing alias or package, the very storage sessions
  live in);
- W006 (``check --deploy`` only) the session alias has no socket timeouts, so
  a Redis that stops answering would hold every request forever.

A check never crashes: whatever goes wrong while checking is itself reported
(or left to ``alias.py``'s E001).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ..migration.registry import build_source
from ..storage.options import unknown_options
from ..storage.registry import sessions_for

ENGINE = "cache_sessions.backend"
OUR_BACKEND = "cache_sessions.cache.RedisCache"
OUR_CLIENT = "cache_sessions.client.SessionClient"
OUR_CLIENTS = (OUR_CLIENT, "cache_sessions.cluster.ClusterClient")


@checks.register(checks.Tags.caches)
def check_options(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W004 for OPTIONS names that neither cache_sessions nor Django/django-redis know."""
    messages: list[checks.CheckMessage] = []
    for alias, config in getattr(settings, "CACHES", {}).items():
        options = config.get("OPTIONS") or {}
        if config.get("BACKEND") != OUR_BACKEND and options.get("CLIENT_CLASS") not in OUR_CLIENTS:
            continue
        for name, close in unknown_options(options):
            hint = f"Did you mean {close!r}?" if close else None
            messages.append(
                checks.Warning(
                    f"CACHES[{alias!r}]['OPTIONS'] has {name!r}, which neither cache_sessions nor "
                    f"django-redis reads (fine if a third-party serializer or connection factory does).",
                    hint=hint,
                    id="cache_sessions.W004",
                )
            )
    return messages


@checks.register(checks.Tags.caches)
def check_migrate_from(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E003: the old store of MIGRATE_FROM can be read (built here, as the first miss would)."""
    if getattr(settings, "SESSION_ENGINE", None) != ENGINE:
        return []
    alias = settings.SESSION_CACHE_ALIAS
    try:
        sessions = sessions_for(alias)
        spec = sessions.options.migrate_from
        if spec is not None:
            build_source(spec, sessions, alias)
    except ImproperlyConfigured as exc:
        if "MIGRATE_FROM" in str(exc):
            return [checks.Error(str(exc), id="cache_sessions.E003")]
    except Exception:
        pass  # what else is wrong is check_session_alias's to report
    return []


@checks.register(checks.Tags.caches, deploy=True)
def check_timeouts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W006: without socket timeouts a hung Redis (or a network partition) hangs requests forever."""
    if getattr(settings, "SESSION_ENGINE", None) != ENGINE:
        return []
    alias = settings.SESSION_CACHE_ALIAS
    config = getattr(settings, "CACHES", {}).get(alias) or {}
    options = config.get("OPTIONS") or {}
    pool_kwargs = options.get("CONNECTION_POOL_KWARGS") or {}
    location = str(config.get("LOCATION", ""))
    missing = [
        name
        for name, kwarg in (("SOCKET_CONNECT_TIMEOUT", "socket_connect_timeout"), ("SOCKET_TIMEOUT", "socket_timeout"))
        if options.get(name) is None and pool_kwargs.get(kwarg) is None and f"{kwarg}=" not in location
    ]
    if not missing:
        return []
    return [
        checks.Warning(
            f"CACHES[{alias!r}] sets no {' or '.join(missing)}: a Redis that stops answering (a hung server, "
            f"a network partition) would hold each request, and its worker, without limit.",
            hint="For example OPTIONS['SOCKET_CONNECT_TIMEOUT'] = 1 and OPTIONS['SOCKET_TIMEOUT'] = 1 (seconds).",
            id="cache_sessions.W006",
        )
    ]
