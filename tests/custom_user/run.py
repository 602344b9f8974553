"""The drop-in on a site with a custom user model: run as ``python -m tests.custom_user.run`` (with
``DJANGO_SETTINGS_MODULE=tests.custom_user.settings``); prints what it saw, as JSON."""

from __future__ import annotations

import json

import django

django.setup()

from django.contrib import admin  # noqa: E402  (after setup)
from django.contrib.admin.models import LogEntry  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from cache_sessions import users  # noqa: E402
from cache_sessions.admin import UserSessionsAdminMixin  # noqa: E402
from cache_sessions.checks import users as user_checks  # noqa: E402
from tests.custom_user.admin import AccountAdmin  # noqa: E402
from tests.custom_user.models import Account  # noqa: E402


def main() -> dict[str, object]:
    call_command("migrate", verbosity=0)
    registered = admin.site._registry[Account]
    root = Account.objects.create(email="root@example.com", is_staff=True, is_superuser=True)
    alice = Account.objects.create(email="alice@example.com")
    laptop, phone, staff = Client(), Client(), Client()
    for client, user in ((laptop, alice), (phone, alice), (staff, root)):
        client.force_login(user)
    listed = laptop.get("/account/sessions/").content.decode()
    change = f"/admin/custom_user/account/{alice.pk}/change/"
    page = staff.get(change).content.decode()
    ended = staff.post(f"/admin/custom_user/account/{alice.pk}/sessions/log-out/")
    return {
        "patched": isinstance(registered, UserSessionsAdminMixin) and isinstance(registered, AccountAdmin),
        "checks": [message.id for message in user_checks.check_user_admin()],
        "rows": listed.count("<tr"),
        "panel": 'id="cache-sessions"' in page and "Log this user out everywhere" in page,
        "redirect": ended["Location"] == change,
        "left": len(users.user_sessions(alice)),
        "root_left": len(users.user_sessions(root)),
        "history": [entry.get_change_message() for entry in LogEntry.objects.filter(object_id=str(alice.pk))],
    }


if __name__ == "__main__":
    print(json.dumps(main()))
