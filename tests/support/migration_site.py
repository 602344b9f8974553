"""The migration tests' site and old stores: users log in on an old engine, then the site switches to ours.

Its own Redis server (DB 0: ours; DB 1: an old cache_sessions alias or django-redis-sessions;
DB 2 and 3: Django's cache engine on django-redis and on Django's RedisCache; DB 4: django-redisession),
so flushing it between tests touches no other test's data.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import caches as django_caches
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from cache_sessions.migration.base import Found
from cache_sessions.migration.redis import CacheSessionsSource
from cache_sessions.migration.registry import build_source
from cache_sessions.storage.registry import sessions_for
from cache_sessions.testing import RedisServer
from tests.support.redis_stats import CountingConnection
from tests.support.servers import RECOMMENDED

OURS = "cache_sessions.backend"
DJANGO = "django.contrib.sessions.backends."
AGE = 1209600  # Django's SESSION_COOKIE_AGE


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "-")


def add(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = [*request.session.get("cart", []), request.GET["item"]]
    return HttpResponse(",".join(request.session["cart"]))


urlpatterns = [path("whoami/", whoami), path("add/", add)]


@functools.cache
def server() -> RedisServer:
    return RedisServer(config=RECOMMENDED).start()


@functools.cache
def file_dir() -> str:
    return tempfile.mkdtemp(prefix="cache-sessions-files-")


def url(db: int) -> str:
    return f"{server().url}/{db}"


def raw(db: int) -> redis.Redis:
    return redis.Redis.from_url(url(db))


def alias(db: int = 0, **options: Any) -> dict[str, Any]:
    """A cache_sessions alias on DB ``db`` whose connections count round trips."""
    options = {**options, "CONNECTION_POOL_KWARGS": {"connection_class": CountingConnection}}
    return {"BACKEND": "cache_sessions.cache.RedisCache", "LOCATION": url(db), "OPTIONS": options}


def caches(ours: dict[str, Any] | None = None, **more: dict[str, Any]) -> dict[str, Any]:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": ours or alias(0),
        # Django's cache engine on Redis caches: django-redis's, and Django's own.
        "old": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url(2)},
        "old_django": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url(3)},
        **more,
    }


def flush() -> None:
    for db in range(5):
        raw(db).flushdb()
    for name in os.listdir(file_dir()):
        os.unlink(os.path.join(file_dir(), name))


def in_ours(key: str) -> Found | None:
    """Our copy of a session, with its expiry (read the way the fallback reads an old alias)."""
    ours = sessions_for("sessions")
    return CacheSessionsSource(ours, ours, "sessions", same_alias=False).read(key)


def in_old(key: str) -> Found | None:
    """The old store's copy, read through the fallback's own source."""
    ours = sessions_for("sessions")
    assert ours.options.migrate_from is not None
    return build_source(ours.options.migrate_from, ours, "sessions").read(key)


# How each old store ages a session (expires in 500 s, as if saved long ago) or expires it.


def db_age(key: str) -> None:
    Session.objects.filter(session_key=key).update(expire_date=_at(time.time() + 500))


def db_expire(client: Client, key: str) -> None:
    Session.objects.filter(session_key=key).update(expire_date=_at(time.time() - 10))


def _at(timestamp: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def cache_age(cache_alias: str) -> Callable[[str], None]:
    def age(key: str) -> None:
        assert django_caches[cache_alias].touch("django.contrib.sessions.cache" + key, 500)

    return age


def file_age(key: str) -> None:
    modified = time.time() - AGE + 500
    os.utime(os.path.join(file_dir(), settings.SESSION_COOKIE_NAME + key), (modified, modified))


def file_expire(client: Client, key: str) -> None:
    modified = time.time() - AGE - 10
    os.utime(os.path.join(file_dir(), settings.SESSION_COOKIE_NAME + key), (modified, modified))


def redis_sessions_age(key: str) -> None:
    assert raw(1).expire(f"session:{key}", 500)


def our_age(key: str) -> None:
    old = sessions_for("sessions")
    assert old.update(key, old.load(key) or {}, 500)


def our_hash_expire(client: Client, key: str) -> None:
    old = sessions_for("sessions")
    bucket, field_name, _ = old.locate(key)
    old.redis().hset(bucket, field_name, old.codec.encode(old.load(key) or {}, expires_at=int(time.time()) - 10))


def signed_expire(client: Client, key: str) -> None:
    data = signing.loads(key, salt="django.contrib.sessions.backends.signed_cookies")
    data["_session_expiry"] = _at(time.time() - 10).isoformat()
    client.cookies[settings.SESSION_COOKIE_NAME] = signing.dumps(
        data, salt="django.contrib.sessions.backends.signed_cookies", compress=True
    )


@dataclass
class Case:
    old: dict[str, Any]  # the old site's settings (SESSION_ENGINE...)
    migrate_from: Any = None  # OPTIONS["MIGRATE_FROM"] of ours after the switch
    ours: dict[str, Any] = field(default_factory=dict)  # our other options after the switch
    old_ours: dict[str, Any] | None = None  # CACHES["sessions"] of an old site on cache_sessions
    more_caches: dict[str, Any] = field(default_factory=dict)  # other aliases, before and after
    bulk: bool = True  # the old store can list its sessions
    new_key: bool = False  # signed cookies: the session moves to a new key
    age: Callable[[str], None] | None = None  # make the old session expire in 500 s
    expire: Callable[[Client, str], None] | None = None  # make it expired, yet still in the store

    def old_settings(self) -> Any:
        return override_settings(**self.old, CACHES=caches(self.old_ours, **self.more_caches))

    def new_settings(self, migrate: bool = True) -> Any:
        options = {**self.ours, **({"MIGRATE_FROM": self.migrate_from} if migrate else {})}
        return override_settings(
            SESSION_ENGINE=OURS, SESSION_CACHE_ALIAS="sessions", CACHES=caches(alias(0, **options), **self.more_caches)
        )


OLD_OURS = {"SESSION_ENGINE": OURS, "SESSION_CACHE_ALIAS": "sessions"}
RS_ALIAS = {"old_rs": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url(1)}}

CASES: dict[str, Case] = {
    "db": Case({"SESSION_ENGINE": DJANGO + "db"}, DJANGO + "db", age=db_age, expire=db_expire),
    "cached_db": Case(
        {"SESSION_ENGINE": DJANGO + "cached_db", "SESSION_CACHE_ALIAS": "old"},
        {"ENGINE": DJANGO + "cached_db", "CACHE_ALIAS": "old"},
        age=db_age,
        expire=db_expire,
    ),
    "cache-django-redis": Case(
        {"SESSION_ENGINE": DJANGO + "cache", "SESSION_CACHE_ALIAS": "old"},
        {"ENGINE": DJANGO + "cache", "CACHE_ALIAS": "old"},
        age=cache_age("old"),
    ),
    "cache-django-rediscache": Case(
        {"SESSION_ENGINE": DJANGO + "cache", "SESSION_CACHE_ALIAS": "old_django"},
        {"ENGINE": DJANGO + "cache", "CACHE_ALIAS": "old_django"},
        age=cache_age("old_django"),
    ),
    "file": Case(
        {"SESSION_ENGINE": DJANGO + "file", "SESSION_FILE_PATH": file_dir()},
        {"ENGINE": DJANGO + "file", "FILE_PATH": file_dir()},
        age=file_age,
        expire=file_expire,
    ),
    "signed_cookies": Case(
        {"SESSION_ENGINE": DJANGO + "signed_cookies"},
        DJANGO + "signed_cookies",
        bulk=False,
        new_key=True,
        expire=signed_expire,
    ),
    "redis_sessions": Case(
        {"SESSION_ENGINE": "redis_sessions.session", "SESSION_REDIS": {"prefix": "session"}},
        "redis_sessions.session",
        age=redis_sessions_age,
    ),
    "redis_sessions-alias": Case(
        {"SESSION_ENGINE": "redis_sessions.session", "SESSION_REDIS": {"prefix": "session"}},
        {"ENGINE": "redis_sessions.session", "ALIAS": "old_rs", "PREFIX": "session"},
        more_caches=RS_ALIAS,
        age=redis_sessions_age,
    ),
    "ours-string-to-hash": Case(OLD_OURS, {"USE_HASH": False}, old_ours=alias(0, USE_HASH=False), age=our_age),
    "ours-hash-to-string": Case(
        OLD_OURS,
        {"USE_HASH": True},
        ours={"USE_HASH": False},
        old_ours=alias(0),
        bulk=False,
        age=our_age,
        expire=our_hash_expire,
    ),
    "ours-buckets-8-to-16384": Case(
        OLD_OURS, {"BUCKETS": 8}, old_ours=alias(0, BUCKETS=8), bulk=False, age=our_age, expire=our_hash_expire
    ),
    "ours-other-alias": Case(
        OLD_OURS,
        "previous",
        old_ours=alias(1, USE_HASH=False, COMPRESS_LIB="zlib"),
        more_caches={"previous": alias(1, USE_HASH=False, COMPRESS_LIB="zlib")},
        age=our_age,
    ),
}
BULK_CASES = sorted(name for name, case in CASES.items() if case.bulk)


# Fixtures (imported by the test modules) and helpers --------------------------------------------


@pytest.fixture(name="site", autouse=True)
def site_fixture(monkeypatch):
    """The migration site, and django-redis-sessions pointed at DB 1 (it reads its settings at import)."""
    from redis_sessions import session
    from redis_sessions import settings as rs

    monkeypatch.setattr(rs, "SESSION_REDIS_CONNECTION_OBJECT", raw(1))
    monkeypatch.setattr(rs, "SESSION_REDIS_PREFIX", "session")
    monkeypatch.setattr(session.RedisServer, "_RedisServer__redis", {})
    with override_settings(ROOT_URLCONF="tests.support.migration_site", CACHES=caches()):
        yield
    flush()


@pytest.fixture(name="user")
def user_fixture(django_user_model):
    return django_user_model.objects.create(username="ada")  # no password: hashing one costs ~0.4 s


def logged_in(name: str, user) -> tuple[Client, str]:
    """A browser logged in on the old engine of case ``name``, and its cookie."""
    with CASES[name].old_settings():
        client = Client()
        client.force_login(user)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value
