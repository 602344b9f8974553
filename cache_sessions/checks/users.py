"""System checks of the session pages and the admin (sessions per user).

- W011 the URLconf serves the session pages (``cache_sessions.urls`` or ``urls_async``)
  while ``USER_SESSIONS`` is off: they would answer every request with an error;
- W012 ``USER_SESSIONS`` is on, but the admin of the user model on ``admin.site`` has no
  sessions panel: its app registers it after cache_sessions patched the user admin.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.urls import NoReverseMatch, reverse

from ..users import user_sessions_on


def _on() -> bool | None:
    """Whether sessions per user are on; None when that cannot be told (E001 reports why)."""
    try:
        return user_sessions_on()
    except Exception:  # a broken alias or engine: other checks report it
        return None


@checks.register(checks.Tags.urls)
def check_session_pages(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        reverse("cache_sessions:session_list")
    except NoReverseMatch:
        return []
    except Exception:  # a URLconf that does not load: Django's own URL checks report it
        return []
    if _on() is not False:
        return []
    return [
        checks.Warning(
            "The URLconf includes cache_sessions' session pages, but sessions per user are off: "
            "they answer every request with ImproperlyConfigured.",
            hint=f"Set OPTIONS['USER_SESSIONS'] = True in CACHES[{settings.SESSION_CACHE_ALIAS!r}] "
            f"(with SESSION_ENGINE = 'cache_sessions.backend'), or remove the include().",
            id="cache_sessions.W011",
        )
    ]


@checks.register(checks.Tags.admin)
def check_user_admin(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not apps.is_installed("django.contrib.admin") or not getattr(settings, "CACHE_SESSIONS_PATCH_USER_ADMIN", True):
        return []
    # Only with the admin installed: importing it registers the admin's models.
    from django.contrib import admin
    from django.contrib.auth import get_user_model

    from ..admin import UserSessionsAdminMixin

    registered = admin.site._registry.get(get_user_model())
    if registered is None or isinstance(registered, UserSessionsAdminMixin) or not _on():
        return []
    name = f"{type(registered).__module__}.{type(registered).__qualname__}"
    return [
        checks.Warning(
            f"The user admin {name} has no sessions panel: cache_sessions could not add it (its app registers "
            f"it after cache_sessions' admin module ran, or it defines a name of UserSessionsAdminMixin's).",
            hint="Put cache_sessions.admin.UserSessionsAdminMixin first in its bases, list cache_sessions after "
            "django.contrib.admin in INSTALLED_APPS, or set CACHE_SESSIONS_PATCH_USER_ADMIN = False.",
            id="cache_sessions.W012",
        )
    ]
