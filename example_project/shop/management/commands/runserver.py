"""Django's ``runserver`` (staticfiles': it serves the admin's CSS), plus where the sessions live and how to log in."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.core.cache import caches

from shop.redis_info import server_name


class Command(RunserverCommand):
    def on_bind(self, server_port: int) -> None:
        super().on_bind(server_port)
        location = settings.CACHES[settings.SESSION_CACHE_ALIAS]["LOCATION"]
        info = caches[settings.SESSION_CACHE_ALIAS].get_client().info("server")
        lines = [f"Sessions: {server_name(info)} at {location} (DB 0 holds the cache)"]
        if settings.DEMO_EMBEDDED_SERVER:
            lines.append(f"  embedded server, pid {info['process_id']}: {info.get('executable') or 'its binary'}")
            lines.append("  it stops, and its temp dir is removed, when this runserver ends")
        else:
            lines.append("  from REDIS_URL")
        host = f"[{self.addr}]" if self._raw_ipv6 else ("0.0.0.0" if self.addr == "0" else self.addr)
        lines.append(f"Log in at {self.protocol}://{host}:{server_port}/ as demo / demo.")
        self.stdout.write("\n".join(lines))
