"""Sessions moved from each MIGRATE_FROM store (by a request, by ``migratesessions``, by
an async load) are in the index: ``revoke_all_sessions`` ends them, with no request in
between. The migration site keeps Django's own session middleware."""

from __future__ import annotations

import dataclasses
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from cache_sessions import users
from cache_sessions.backend import SessionStore
from tests.support.migration_site import (  # noqa: F401  (fixtures)
    BULK_CASES,
    CASES,
    logged_in,
    site_fixture,
    user_fixture,
)

pytestmark = pytest.mark.django_db


def switched(name: str) -> Any:
    """The case's settings after the switch, with USER_SESSIONS."""
    case = CASES[name]
    return dataclasses.replace(case, ours={**case.ours, "USER_SESSIONS": True})


def gone(key: str) -> bool:
    return not SessionStore().exists(key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_session_moved_by_a_request_is_indexed(name, user):
    client, _ = logged_in(name, user)
    with switched(name).new_settings():
        assert client.get("/whoami/").content == b"ada"  # moved here
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
        assert users.revoke_all_sessions(user) == 1
        assert gone(key) and client.get("/whoami/").content == b"-"


@pytest.mark.parametrize("name", BULK_CASES)
def test_a_session_moved_by_migratesessions_is_indexed(name, user):
    client, key = logged_in(name, user)
    with switched(name).new_settings():
        call_command("migratesessions", stdout=StringIO(), stderr=StringIO())
        assert users.revoke_all_sessions(user) == 1  # no request in between
        assert gone(key) and client.get("/whoami/").content == b"-"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["ours-string-to-hash", "redis_sessions", "cache-django-redis"])
async def test_a_session_moved_by_an_async_load_is_indexed(name, user):
    from asgiref.sync import sync_to_async

    _, key = await sync_to_async(logged_in)(name, user)
    with switched(name).new_settings():
        assert (await SessionStore(key).aload())["_auth_user_id"] == str(user.pk)
        assert await users.arevoke_all_sessions(user) == 1
        assert not await SessionStore().aexists(key)
