"""Old stores: Django's own engines (``db``, ``cached_db``, ``cache``, ``file``,
``signed_cookies``, and engines built on them), read as they lie."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.utils.module_loading import import_string

from .. import keys
from .base import BulkUnsupported, Entry, Found, Source, Unreadable, decode_signed, expiry_of, readable


class DbSource(Source):
    """``django.contrib.sessions.backends.db`` (or an engine built on it: its model, its salt)."""

    def __init__(self, store_class: Any) -> None:
        self.model = store_class.get_model_class()
        self.qualname = store_class.__qualname__
        self.name = f"{store_class.__module__} ({self.model._meta.db_table})"

    def read(self, key: str) -> Found | None:
        row = self.model.objects.filter(session_key=key).values_list("session_data", "expire_date").first()
        return None if row is None else readable(self._found, row[0], row[1])

    def _found(self, data: str, expire_date: datetime) -> Found:
        return Found(decode_signed(data, self.qualname), expire_date.timestamp())

    def delete(self, key: str) -> None:
        self.model.objects.filter(session_key=key).delete()

    def delete_many(self, session_keys: list[str]) -> None:
        self.model.objects.filter(session_key__in=session_keys).delete()

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        # Keyset pagination: rows a batch moved (deleted) do not shift the next page.
        rows = self.model.objects.order_by("session_key").values_list("session_key", "session_data", "expire_date")
        last = ""
        while batch := list(rows.filter(session_key__gt=last)[:batch_size]):
            last = batch[-1][0]
            yield [self._entry(key, lambda d=data, e=expires: self._found(d, e)) for key, data, expires in batch]

    @staticmethod
    def _entry(key: str, read: Any) -> Entry:
        if not keys.is_valid_session_key(key):
            return Entry(key, error="a session key no cookie can carry")
        try:
            return Entry(key, read())
        except Unreadable as exc:
            return Entry(key, error=str(exc))


class CachedDbSource(DbSource):
    """``django.contrib.sessions.backends.cached_db``: the database is the truth; the cache copy goes too."""

    def __init__(self, store_class: Any, cache_alias: str) -> None:
        super().__init__(store_class)
        self.cache_alias, self.prefix = cache_alias, store_class.cache_key_prefix

    def delete(self, key: str) -> None:
        caches[self.cache_alias].delete(self.prefix + key)
        super().delete(key)

    def delete_many(self, session_keys: list[str]) -> None:
        caches[self.cache_alias].delete_many([self.prefix + key for key in session_keys])
        super().delete_many(session_keys)


class CacheSource(Source):
    """``django.contrib.sessions.backends.cache`` on ``CACHE_ALIAS``: the dict under ``<prefix><key>``."""

    def __init__(self, store_class: Any, cache_alias: str) -> None:
        self.cache_alias, self.prefix = cache_alias, store_class.cache_key_prefix
        self.name = f"{store_class.__module__} (CACHES[{cache_alias!r}])"

    def read(self, key: str) -> Found | None:
        cache = caches[self.cache_alias]
        data = cache.get(self.prefix + key)
        if not isinstance(data, dict):
            return None
        return Found(data, _expires_at(cache, self.prefix + key))

    def delete(self, key: str) -> None:
        caches[self.cache_alias].delete(self.prefix + key)

    def delete_many(self, session_keys: list[str]) -> None:
        caches[self.cache_alias].delete_many([self.prefix + key for key in session_keys])

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        names = _cache_keys(caches[self.cache_alias], self.prefix)
        if names is None:
            raise BulkUnsupported(f"CACHES[{self.cache_alias!r}] cannot list its keys (only Redis caches can)")
        batch: dict[str, None] = {}  # SCAN may return a name twice: once per batch
        for name in names:
            key = name[len(self.prefix) :]
            if keys.is_valid_session_key(key):
                batch[key] = None
            if len(batch) >= batch_size:
                yield [Entry(key, self.read(key)) for key in batch]
                batch = {}
        if batch:
            yield [Entry(key, self.read(key)) for key in batch]


def _expires_at(cache: Any, name: str) -> float | None:
    """The remaining life of a cache key, where the cache can tell (Redis); else None."""
    ttl: int | None = None
    if callable(getattr(cache, "ttl", None)):  # django-redis: None for no expiry, 0 for none
        ttl = cache.ttl(name)
    elif type(cache).__module__ == "django.core.cache.backends.redis":
        made = cache.make_and_validate_key(name)
        ttl = cache._cache.get_client(made).ttl(made)
    return time.time() + ttl if ttl is not None and ttl > 0 else None


def _cache_keys(cache: Any, prefix: str) -> Iterator[str] | None:
    """Every key of a Redis cache starting with ``prefix`` (as the app names them), or None."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    if callable(getattr(cache, "iter_keys", None)):  # django-redis
        names: Iterator[str] = iter(cache.iter_keys(pattern))
        return names
    if type(cache).__module__ == "django.core.cache.backends.redis":
        made, start = cache.make_key(pattern), len(cache.make_key(""))
        client = cache._cache.get_client(made)
        return (name.decode()[start:] for name in client.scan_iter(match=made, count=1000))
    return None


class FileSource(Source):
    """``django.contrib.sessions.backends.file``: ``<path>/<SESSION_COOKIE_NAME><key>``, expiry from its mtime."""

    def __init__(self, store_class: Any, path: str | None) -> None:
        self.path = path or getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
        self.qualname = store_class.__qualname__
        self.name = f"{store_class.__module__} ({self.path})"

    def _file(self, key: str) -> str:
        return os.path.join(self.path, settings.SESSION_COOKIE_NAME + key)  # key is [a-z0-9]: no "../"

    def read(self, key: str) -> Found | None:
        return readable(self._read, key)

    def _read(self, key: str) -> Found | None:
        try:
            with open(self._file(key), encoding="ascii", errors="replace") as file:
                text, modified_at = file.read(), os.fstat(file.fileno()).st_mtime
        except FileNotFoundError:
            return None
        data = decode_signed(text, self.qualname)
        return Found(data, expiry_of(data, modified_at))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(key))

    def walk(self, batch_size: int) -> Iterator[list[Entry]]:
        prefix = settings.SESSION_COOKIE_NAME
        batch: list[Entry] = []
        with os.scandir(self.path) as files:
            for file in files:
                key = file.name[len(prefix) :]
                if not file.name.startswith(prefix) or not keys.is_valid_session_key(key):
                    continue
                batch.append(DbSource._entry(key, lambda k=key: self._read(k)))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


SIGNED_COOKIE = re.compile(r"[A-Za-z0-9_\-:.]{8,4096}\Z")  # what signing.dumps makes


class SignedCookieSource(Source):
    """``django.contrib.sessions.backends.signed_cookies``: the cookie is the session.

    Nothing to ask over the network (so no thread hop) and nothing to delete: the
    moved session gets a new key, and its cookie replaces the signed one."""

    name = "django.contrib.sessions.backends.signed_cookies"
    native_async = True
    new_key = True

    def accepts(self, cookie: str) -> bool:
        return ":" in cookie and SIGNED_COOKIE.match(cookie) is not None

    def read(self, key: str) -> Found | None:
        try:
            data = signing.loads(
                key,
                serializer=import_string(settings.SESSION_SERIALIZER),
                max_age=settings.SESSION_COOKIE_AGE,
                salt="django.contrib.sessions.backends.signed_cookies",
            )
        except Exception:  # a bad signature, an expired cookie: no session, as the old engine said
            return None
        return Found(data, None) if isinstance(data, dict) else None

    async def aread(self, key: str) -> Found | None:
        return self.read(key)

    def delete(self, key: str) -> None:
        pass

    async def adelete(self, key: str) -> None:
        pass
