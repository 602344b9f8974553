"""The admin (``cache_sessions.admin``): a user's sessions on their change page, "Log out
everywhere" as a button and as an action, permission-checked and written to the history,
on the stock user admin (patched at startup) and on a site's own admin with the mixin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.urls import path
from redis import Redis

from cache_sessions import users
from cache_sessions.admin import UserSessionsAdminMixin, patch_user_admin
from cache_sessions.checks import users as user_checks
from tests.support.configs import HASH, _config
from tests.support.partitions import raw
from tests.test_session_views import MIDDLEWARE, device, revoked, who
from tests.test_users import INDEXED, IPHONE, LOCMEM, log_in, whoami

pytestmark = pytest.mark.django_db
__all__ = ["revoked"]  # a fixture
ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = settings.REDIS_URL


class SiteUserAdmin(UserSessionsAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """A site's own user admin, not Django's, with the mixin first."""

    fields = ["username", "email", "is_active"]


site_admin = admin.AdminSite(name="site_admin")
site_admin.register(User, SiteUserAdmin)

urlpatterns = [
    path("login", log_in),
    path("whoami", whoami),
    path("admin/", admin.site.urls),
    path("site-admin/", site_admin.urls),
]


@pytest.fixture
def site() -> Iterator[dict[str, User]]:
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": _config(4, **HASH, **INDEXED)},
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF=__name__,
    ):
        people = {
            "root": User.objects.create_superuser("root", password="x"),
            "viewer": User.objects.create_user("viewer", password="x", is_staff=True),
            "clerk": User.objects.create_user("clerk", password="x", is_staff=True),
            "alice": User.objects.create_user("alice", password="x"),
            "bob": User.objects.create_user("bob", password="x"),
        }
        people["viewer"].user_permissions.add(Permission.objects.get(codename="view_user"))
        yield people
        raw("sessions").flushdb()


def staff(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(user: User, prefix: str = "admin") -> str:
    return f"/{prefix}/auth/user/{user.pk}/change/"


def button_url(user: User, prefix: str = "admin") -> str:
    return f"/{prefix}/auth/user/{user.pk}/sessions/log-out/"


def count(name: str) -> int:
    return len(users.user_sessions(User.objects.get(username=name)))


def test_the_registered_user_admin_was_patched():
    registered = admin.site._registry[User]
    assert isinstance(registered, UserSessionsAdminMixin) and isinstance(registered, UserAdmin)
    assert user_checks.check_user_admin() == []


def test_the_change_page_lists_the_sessions_and_its_button_ends_them(site, revoked):
    laptop, phone = device(), device(IPHONE, "198.51.100.7")
    root = staff(site["root"])
    page = root.get(change_url(site["alice"])).content.decode()
    panel = page[page.index('id="cache-sessions"') :]
    assert panel.count("<tr>") == 3  # a header, two sessions
    assert "Firefox on Linux" in panel and "Safari on iOS" in panel and "198.51.100.7" in panel
    assert f'action="{button_url(site["alice"])}"' in panel and "Log this user out everywhere" in panel
    assert page.index('id="user_form"') < page.index('id="cache-sessions"')  # below the form, not inside it

    response = root.post(button_url(site["alice"]), follow=True)
    assert response.redirect_chain == [(change_url(site["alice"]), 302)]
    assert "Alice was logged out everywhere: 2 sessions ended." in response.content.decode()  # capfirst: the admin
    assert who(laptop) is None and who(phone) is None and count("alice") == 0
    [entry] = LogEntry.objects.filter(object_id=str(site["alice"].pk))
    assert (entry.user, entry.action_flag) == (site["root"], CHANGE)
    assert entry.get_change_message() == "Logged out everywhere: 2 sessions ended."
    [sent] = revoked
    assert (sent["by"], sent["count"], sent["user_id"]) == ("admin", 2, str(site["alice"].pk))
    assert sent["request"].user == site["root"]
    assert "This user is not logged in anywhere." in root.get(change_url(site["alice"])).content.decode()


def test_who_may_only_view_users_sees_the_sessions_and_cannot_end_them(site):
    laptop = device()
    viewer, clerk = staff(site["viewer"]), staff(site["clerk"])
    page = viewer.get(change_url(site["alice"])).content.decode()
    assert "Firefox on Linux" in page and button_url(site["alice"]) not in page
    assert viewer.post(button_url(site["alice"])).status_code == 403
    assert clerk.get(change_url(site["alice"])).status_code == 403
    assert clerk.post(button_url(site["alice"])).status_code == 403
    assert Client().post(button_url(site["alice"])).status_code == 302  # to the admin's login
    assert who(laptop) == "alice" and not LogEntry.objects.exists()


def test_the_button_answers_only_post_for_a_user_and_keeps_the_lists_filters(site):
    laptop = device()
    root = staff(site["root"])
    assert root.get(button_url(site["alice"])).status_code == 405
    assert root.post("/admin/auth/user/999999/sessions/log-out/").status_code == 404
    assert who(laptop) == "alice"
    filters = "?_changelist_filters=q%3Dalice"  # the user list's search, kept as the admin keeps it
    assert (
        f'action="{button_url(site["alice"])}{filters}"'
        in root.get(change_url(site["alice"]) + filters).content.decode()
    )
    assert root.post(button_url(site["alice"]) + filters)["Location"] == change_url(site["alice"]) + filters


def test_the_action_logs_the_selected_users_out(site, revoked):
    alice, phone, bob, _carol = device(), device(IPHONE), device(name="bob"), device(name="root")
    root = staff(site["root"])
    changelist = "/admin/auth/user/"
    assert 'value="log_out_everywhere"' in root.get(changelist).content.decode()
    selected = [site["alice"].pk, site["bob"].pk]
    response = root.post(changelist, {"action": "log_out_everywhere", "_selected_action": selected}, follow=True)
    assert "2 users were logged out everywhere. 3 sessions ended." in response.content.decode()
    assert (who(alice), who(phone), who(bob)) == (None, None, None)
    assert count("root") == 2  # root's own two sessions: not selected
    messages = sorted(entry.get_change_message() for entry in LogEntry.objects.all())
    assert messages == ["Logged out everywhere: 1 session ended.", "Logged out everywhere: 2 sessions ended."]
    assert sorted((r["by"], r["count"]) for r in revoked) == [("admin", 1), ("admin", 2)]


def test_the_user_list_raises_no_deprecation_of_our_own(site):
    """Django 6.1 warns (RemovedInDjango2028Warning) about a get_actions() that cannot say
    where the actions go; the list and a change page must render without it."""
    root = staff(site["root"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert 'value="log_out_everywhere"' in root.get("/admin/auth/user/").content.decode()
        assert root.get(change_url(site["alice"])).status_code == 200
    ours = [
        w
        for w in caught
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)) and "get_actions" in str(w.message)
    ]
    assert ours == []


def test_the_action_is_offered_only_to_who_may_change_users(site):
    laptop = device()
    viewer = staff(site["viewer"])
    assert "log_out_everywhere" not in viewer.get("/admin/auth/user/").content.decode()
    viewer.post("/admin/auth/user/", {"action": "log_out_everywhere", "_selected_action": [site["alice"].pk]})
    assert who(laptop) == "alice" and not LogEntry.objects.exists()


def test_without_user_sessions_no_panel_and_no_action(site):
    laptop = device()
    root = staff(site["root"])
    with override_settings(CACHES={"default": LOCMEM, "sessions": _config(4, **HASH)}):
        assert 'id="cache-sessions"' not in root.get(change_url(site["alice"])).content.decode()
        assert "log_out_everywhere" not in root.get("/admin/auth/user/").content.decode()
        with pytest.raises(ImproperlyConfigured, match="USER_SESSIONS"):
            root.post(button_url(site["alice"]))
    assert who(laptop) == "alice"


def test_a_sites_own_user_admin_with_the_mixin(site):
    laptop = device()
    root = staff(site["root"])
    page = root.get(change_url(site["alice"], "site-admin")).content.decode()
    assert "Firefox on Linux" in page and f'action="{button_url(site["alice"], "site-admin")}"' in page
    response = root.post(button_url(site["alice"], "site-admin"))
    assert response["Location"] == change_url(site["alice"], "site-admin")
    assert who(laptop) is None


def test_the_panel_in_french(site):
    device()
    root = staff(site["root"])
    page = root.get(change_url(site["alice"]), HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Firefox sous Linux" in page and "Déconnecter cet utilisateur partout" in page
    changelist = root.get("/admin/auth/user/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Déconnecter partout les utilisateurs sélectionnés" in changelist


class PlainUserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    pass


class ItsOwnLogOut(admin.ModelAdmin):  # type: ignore[type-arg]
    def log_out_everywhere(self, request: Any, queryset: Any) -> None:
        """A site's own action of that name: patching would replace it."""


@pytest.mark.parametrize(
    ("registered", "setting", "patched"),
    [(PlainUserAdmin, True, True), (PlainUserAdmin, False, False), (ItsOwnLogOut, True, False), (None, True, False)],
)
def test_patching_a_registered_user_admin(registered, setting, patched):
    other_site = admin.AdminSite(name="other")
    if registered:
        other_site.register(User, registered)
    with override_settings(CACHE_SESSIONS_PATCH_USER_ADMIN=setting):
        assert patch_user_admin(other_site) is patched
        assert patch_user_admin(other_site) is False  # never twice
    if registered:
        now = other_site._registry[User]
        assert isinstance(now, registered) and isinstance(now, UserSessionsAdminMixin) is patched
        assert type(now).__name__ == registered.__name__


def test_a_user_admin_left_unpatched_is_reported(site):
    patched = type(admin.site._registry[User])
    admin.site.unregister(User)
    admin.site.register(User, UserAdmin)  # as an app listed after cache_sessions would leave it
    try:
        [warning] = user_checks.check_user_admin()
        with override_settings(CACHE_SESSIONS_PATCH_USER_ADMIN=False):
            assert user_checks.check_user_admin() == []
    finally:
        admin.site.unregister(User)
        admin.site.register(User, patched)
    assert warning.id == "cache_sessions.W012" and "django.contrib.auth.admin.UserAdmin" in warning.msg


def test_a_custom_user_model_and_its_own_admin_registered_after_cache_sessions():
    """A site of its own (tests/custom_user: a UUID primary key, an admin of its own listed after
    cache_sessions), in a subprocess: its user admin is patched, the pages and the button work."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.custom_user.settings",
        "CUSTOM_USER_REDIS_URL": f"{REDIS_URL}/4",  # the DB of this module's site, flushed after each test
    }
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tests.custom_user.run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        Redis.from_url(f"{REDIS_URL}/4").flushdb()
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen == {
        "patched": True,
        "checks": [],
        "rows": 3,  # a header and alice's two sessions
        "panel": True,
        "redirect": True,
        "left": 0,
        "root_left": 1,
        "history": ["Logged out everywhere: 2 sessions ended."],
    }
