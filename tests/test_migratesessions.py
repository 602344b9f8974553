"""``manage.py migratesessions``: the bulk move, then the fallback switched off, and nobody logged out."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from cache_sessions.storage.registry import sessions_for
from tests.support.migration_site import (  # noqa: F401  (fixtures)
    BULK_CASES,
    CASES,
    DJANGO,
    alias,
    caches,
    in_old,
    in_ours,
    logged_in,
    site_fixture,
    user_fixture,
)

pytestmark = pytest.mark.django_db


def migrate(*args: str) -> str:
    out = StringIO()
    call_command("migratesessions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize("name", BULK_CASES)
def test_everyone_stays_logged_in_after_a_bulk_run_and_the_fallback_off(name, user):
    case = CASES[name]
    browsers = [logged_in(name, user) for _ in range(3)]
    if case.age:
        with case.old_settings():
            case.age(browsers[0][1])
    expired = None
    if case.expire:
        expired = logged_in(name, user)
        with case.old_settings():
            case.expire(*expired)
    with case.new_settings():
        out = migrate()
        assert "3 copied" in out and "0 failed" in out
        assert f"{1 if expired else 0} skipped as expired" in out
        for _, key in browsers:
            assert in_old(key) is None  # moved
        if case.age:
            assert 480 < in_ours(browsers[0][1]).expires_at - time.time() <= 501
        assert ", 0 copied," in migrate()  # a second run has nothing left to do
    with case.new_settings(migrate=False):
        for client, _ in browsers:
            assert client.get("/whoami/").content == b"ada"
        if expired:
            assert expired[0].get("/whoami/").content == b"-"


@pytest.mark.parametrize("name", sorted(set(CASES) - set(BULK_CASES)))
def test_stores_that_cannot_list_their_sessions_say_so(name):
    with CASES[name].new_settings(), pytest.raises(CommandError, match="Keep MIGRATE_FROM on"):
        migrate()


def test_dry_run_changes_nothing(user):
    _, key = logged_in("db", user)
    with CASES["db"].new_settings():
        assert "1 would copy" in migrate("--dry-run")
        assert in_ours(key) is None and in_old(key) is not None


def test_resumable_in_batches(user):
    keys = [logged_in("db", user)[1] for _ in range(5)]
    with CASES["db"].new_settings():
        out = migrate("--batch-size", "2", "--max-seconds", "0")
        assert "2 copied" in out and "stopped at --max-seconds" in out
        assert "3 copied" in migrate("--batch-size", "2")  # what is left
        assert all(in_ours(key) is not None for key in keys)
        assert not Session.objects.exists()


def test_a_session_already_here_is_newer_and_kept(user):
    _, key = logged_in("db", user)
    with CASES["db"].new_settings():
        sessions_for("sessions").create(key, {"_auth_user_id": "999"}, 600)
        assert "0 copied, 1 already here (kept)" in migrate()
        assert in_ours(key).data == {"_auth_user_id": "999"}
        assert in_old(key) is None  # the stale copy goes


def test_failures_are_counted_with_their_reason(user):
    logged_in("db", user)
    _, bad = logged_in("db", user)
    Session.objects.filter(session_key=bad).update(session_data="garbage:written:elsewhere")
    with CASES["db"].new_settings():
        out = migrate()
    assert "1 copied" in out and "1 failed" in out
    assert "failed: 1 x bad signature" in out


def test_from_on_the_command_line(user):
    _, key = logged_in("db", user)
    with override_settings(SESSION_ENGINE="cache_sessions.backend", CACHES=caches(alias(0))):
        assert "1 copied" in migrate("--from", DJANGO + "db")
        assert in_ours(key) is not None


def test_refused_while_the_old_engine_still_serves_the_site(user):
    logged_in("db", user)
    with CASES["db"].old_settings(), pytest.raises(CommandError, match="switch the site"):
        migrate("--from", DJANGO + "db")


def test_without_a_source_it_says_what_to_set():
    with (
        override_settings(SESSION_ENGINE="cache_sessions.backend", CACHES=caches(alias(0))),
        pytest.raises(CommandError, match="Give --from"),
    ):
        migrate()
    assert settings.SESSION_COOKIE_NAME  # the site fixture restored the settings
