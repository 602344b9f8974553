from django.apps import AppConfig


class CacheSessionsConfig(AppConfig):
    name = "cache_sessions"
    verbose_name = "Cache sessions"

    def ready(self) -> None:
        from . import checks, middleware_checks, topology_checks  # noqa: F401  (registers the system checks)
