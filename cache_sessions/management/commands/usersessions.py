"""``manage.py usersessions <username or id> [--revoke-all | --revoke ID]``: a user's sessions."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cache_sessions import users
from cache_sessions.signals import COMMAND, revoking


class Command(BaseCommand):
    help = "List a user's sessions (USER_SESSIONS), or end them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="A username, or a user id.")
        parser.add_argument("--alias", default=None, help="CACHES alias (default: SESSION_CACHE_ALIAS).")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--revoke-all", action="store_true", help="End every session of the user.")
        which.add_argument("--revoke", metavar="ID", help="End the session with this id (from the listing).")

    def execute(self, *args: Any, **options: Any) -> str | None:
        with revoking(COMMAND):  # what signals.sessions_revoked says of the revocations it makes
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        user = self.find_user(options["user"])
        alias = options["alias"]
        try:
            if options["revoke_all"]:
                ended = users.revoke_all_sessions(user, alias=alias)
                self.stdout.write(f"{ended} session(s) of {user} ended.")
                return
            if options["revoke"]:
                if not users.revoke_session(user, options["revoke"], alias=alias):
                    raise CommandError(f"{user} has no session {options['revoke']!r}.")
                self.stdout.write(f"Session {options['revoke']} of {user} ended.")
                return
            listed = users.user_sessions(user, alias=alias)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{len(listed)} session(s) of {user}:")
        for session in listed:
            self.stdout.write(
                f"  {session.id}  created {_when(session.created)}  last seen {_when(session.last_seen)}"
                f"  {session.ip or '-'}  {session.user_agent or '-'}"
            )

    def find_user(self, wanted: str) -> Any:
        model = get_user_model()
        username_field = str(model.USERNAME_FIELD)
        found = model._default_manager.filter(**{username_field: wanted}).first()
        if found is None and wanted.isdigit():
            found = model._default_manager.filter(pk=wanted).first()
        if found is None:
            raise CommandError(f"No user {wanted!r} (by {model.USERNAME_FIELD} or id).")
        return found


def _when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
