"""A minimal Django site for ``tools.benchmarks.server``: settings, URLs and views in one module.

    BENCH_ENGINE=ours-hash REDIS_URL=redis://127.0.0.1:6400/1 gunicorn tools.benchmarks.server_site:application
    BENCH_ASGI=1 BENCH_ENGINE=ours-hash REDIS_URL=... uvicorn tools.benchmarks.server_site:application

With ``BENCH_ASGI=1`` the application is ASGI and the views are async
(``aget``/``aset``). ``ours-*`` engines then run behind cache_sessions'
``SessionMiddleware`` (native: loads and saves on ``redis.asyncio``);
``ours-hash-hop`` is the same engine as it was before native async (every
async session call hops to a thread, and Django's middleware saves in one);
``django-cache`` runs behind Django's middleware, as it must.

``BENCH_ENGINE`` is ``ours-hash``, ``ours-string`` (``cache_sessions.backend``
on a ``cache_sessions.cache.RedisCache`` alias) or ``django-cache`` (Django's
cache session engine on a stock django-redis cache: pickle). ``REDIS_URL``
names the Redis server and logical DB; with ``BENCH_TOPOLOGY=cluster`` it lists a Redis
Cluster's startup nodes (comma-separated), with ``BENCH_SENTINELS=host:port,...`` it is
``redis://<service>/<db>`` of a Sentinel service. No database: sessions only, and
``SessionMiddleware`` is the only middleware.

- ``GET /read/``: the session's ``n`` as text (0 if unset); modifies nothing.
- ``GET /write/``: increments the session's ``n`` (a save on every request) and returns it.
- ``GET /login/``: a new session holding a logged-in-like payload; returns its key.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.crypto import get_random_string

ENGINES = ("ours-hash", "ours-string", "ours-hash-hop", "django-cache")
ASGI = os.environ.get("BENCH_ASGI") == "1"
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def session_settings(engine: str, redis_url: str) -> dict[str, Any]:
    """SESSION_ENGINE, SESSION_CACHE_ALIAS and CACHES for one engine."""
    if engine == "django-cache":
        cache = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}  # django-redis defaults
        return {"SESSION_ENGINE": "django.contrib.sessions.backends.cache", "CACHES": {"default": cache}}
    if engine not in ENGINES:
        raise RuntimeError(f"BENCH_ENGINE={engine!r}: choose one of {', '.join(ENGINES)}")
    ours: dict[str, Any] = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": redis_url,
        "OPTIONS": {"USE_HASH": engine != "ours-string"},
    }
    if os.environ.get("BENCH_TOPOLOGY") == "cluster":  # REDIS_URL: the startup nodes, comma-separated
        ours["LOCATION"] = redis_url.split(",")
        ours["OPTIONS"]["CLIENT_CLASS"] = "cache_sessions.cluster.ClusterClient"
    elif sentinels := os.environ.get("BENCH_SENTINELS"):  # host:port,...; REDIS_URL: redis://<service>/<db>
        ours["OPTIONS"]["SENTINELS"] = [
            (host, int(port)) for host, port in (s.split(":") for s in sentinels.split(","))
        ]
    return {
        "SESSION_ENGINE": "tools.benchmarks.hop_engine" if engine.endswith("-hop") else "cache_sessions.backend",
        "SESSION_CACHE_ALIAS": "sessions",
        "CACHES": {"default": LOCMEM, "sessions": ours},
    }


def read(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("n", 0)), content_type="text/plain")


def write(request: HttpRequest) -> HttpResponse:
    n = request.session.get("n", 0) + 1
    request.session["n"] = n
    return HttpResponse(str(n), content_type="text/plain")


def login(request: HttpRequest) -> HttpResponse:
    request.session.flush()  # a fresh session, as django.contrib.auth.login() cycles the key
    request.session.update(
        {
            "_auth_user_id": "42",
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": secrets.token_hex(32),
            "_csrftoken": get_random_string(32),
        }
    )
    request.session.save()  # now, so that the key exists to be returned; the middleware sends the cookie
    return HttpResponse(request.session.session_key, content_type="text/plain")


async def aread(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await request.session.aget("n", 0)), content_type="text/plain")


async def awrite(request: HttpRequest) -> HttpResponse:
    n = await request.session.aget("n", 0) + 1
    await request.session.aset("n", n)
    return HttpResponse(str(n), content_type="text/plain")


async def alogin(request: HttpRequest) -> HttpResponse:
    await request.session.aflush()
    await request.session.aupdate(
        {
            "_auth_user_id": "42",
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": secrets.token_hex(32),
            "_csrftoken": get_random_string(32),
        }
    )
    await request.session.asave()
    return HttpResponse(request.session.session_key, content_type="text/plain")


if ASGI:
    urlpatterns = [path("read/", aread), path("write/", awrite), path("login/", alogin)]
else:
    urlpatterns = [path("read/", read), path("write/", write), path("login/", login)]

ENGINE = os.environ.get("BENCH_ENGINE", "ours-hash")
NATIVE = ASGI and ENGINE in ("ours-hash", "ours-string")

settings.configure(
    DEBUG=False,
    SECRET_KEY="server-benchmark-not-a-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    USE_TZ=True,
    DATABASES={},
    INSTALLED_APPS=[],
    MIDDLEWARE=[f"{'cache_sessions' if NATIVE else 'django.contrib.sessions'}.middleware.SessionMiddleware"],
    ROOT_URLCONF=__name__,
    # Errors go to stderr (gunicorn's log), not to mail_admins.
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
    },
    **session_settings(ENGINE, os.environ["REDIS_URL"]),
)

application: WSGIHandler | ASGIHandler = get_asgi_application() if ASGI else get_wsgi_application()
