from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy


class CacheSessionsConfig(AppConfig):
    name = "cache_sessions"
    verbose_name = gettext_lazy("Cache sessions")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks; Django wants them imported in ready())

        if _admin_loaded_before(self):
            # The admin modules were loaded already (cache_sessions.admin among them, which patched
            # the user admins registered before it): the user admin of a later app is patched here.
            from .admin import patch_user_admin

            patch_user_admin()


def _admin_loaded_before(config: AppConfig) -> bool:
    """Whether django.contrib.admin is installed and its ready() (autodiscover) ran before ours."""
    labels = [app.name for app in apps.get_app_configs()]
    return "django.contrib.admin" in labels and labels.index("django.contrib.admin") < labels.index(config.name)
