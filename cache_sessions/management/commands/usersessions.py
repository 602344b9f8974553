"""``manage.py usersessions <username or id> [--revoke-all | --revoke ID]``: a user's sessions;
``manage.py usersessions --backfill [--cursor C]``: index the sessions that exist already."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cache_sessions import users
from cache_sessions.errors import SessionStoreError, UserSessionsOff
from cache_sessions.signals import COMMAND, revoking
from cache_sessions.storage.backfill import BackfillReport, backfill, parse_cursor
from cache_sessions.storage.registry import sessions_for


class Command(BaseCommand):
    help = "List a user's sessions (USER_SESSIONS), or end them; or index the sessions that exist already."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", nargs="?", help="A username, or a user id.")
        parser.add_argument("--alias", default=None, help="CACHES alias (default: SESSION_CACHE_ALIAS).")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--revoke-all", action="store_true", help="End every session of the user.")
        which.add_argument("--revoke", metavar="ID", help="End the session with this id (from the listing).")
        which.add_argument(
            "--backfill",
            action="store_true",
            help="Index every logged-in session that has no record yet (once, after turning USER_SESSIONS on).",
        )
        parser.add_argument("--cursor", default="0:0", help="--backfill: go on from where a run stopped.")
        parser.add_argument("--batch", type=int, default=100, help="--backfill: keys or fields per round trip.")
        parser.add_argument("--max-seconds", type=float, default=None, help="--backfill: stop after this long.")

    def execute(self, *args: Any, **options: Any) -> str | None:
        with revoking(COMMAND):  # what signals.sessions_revoked says of the revocations it makes
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["backfill"]:
                return self.backfill(options)
            if not options["user"]:
                raise CommandError("Name a user (username or id), or give --backfill.")
            self.user_sessions(self.find_user(options["user"]), options)
        except ImproperlyConfigured as exc:  # UserSessionsOff among others
            raise CommandError(str(exc)) from exc

    def user_sessions(self, user: Any, options: dict[str, Any]) -> None:
        alias = options["alias"]
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
        self.stdout.write(f"{len(listed)} session(s) of {user}:")
        for session in listed:
            self.stdout.write(
                f"  {session.id}  created {_when(session.created)}  last seen {_when(session.last_seen)}"
                f"  {session.ip or '-'}  {session.user_agent or '-'}"
            )

    def backfill(self, options: dict[str, Any]) -> None:
        alias = options["alias"] or settings.SESSION_CACHE_ALIAS
        sessions = sessions_for(alias)
        if not sessions.options.user_sessions:
            raise UserSessionsOff(alias)
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        try:
            parse_cursor(options["cursor"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            report = backfill(
                sessions,
                cursor=options["cursor"],
                batch=options["batch"],
                max_seconds=options["max_seconds"],
                progress=lambda report: self.stdout.write(_progress(report)),
            )
        except SessionStoreError as exc:
            raise CommandError(f"{exc}\nRun it again with the last --cursor printed to go on.") from exc
        if report.finished:
            self.stdout.write(f"Backfill finished in {report.seconds:.1f} s: {_counts(report)}.")
        else:
            self.stdout.write(f"Stopped after {report.seconds:.1f} s; go on with --cursor {report.cursor}")

    def find_user(self, wanted: str) -> Any:
        model = get_user_model()
        username_field = str(model.USERNAME_FIELD)
        found = model._default_manager.filter(**{username_field: wanted}).first()
        if found is None and wanted.isdigit():
            found = model._default_manager.filter(pk=wanted).first()
        if found is None:
            raise CommandError(f"No user {wanted!r} (by {model.USERNAME_FIELD} or id).")
        return found


def _counts(report: BackfillReport) -> str:
    ended = f", {report.ended} ended by USER_SESSIONS_MAX" if report.ended else ""
    return f"{report.names} looked at, {report.logged_in} logged in, {report.indexed} indexed{ended}"


def _progress(report: BackfillReport) -> str:
    return f"{_counts(report)}; cursor {report.cursor}"


def _when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
