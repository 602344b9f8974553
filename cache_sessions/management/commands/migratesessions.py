"""``manage.py migratesessions``: move every live session of the old store into ours."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cache_sessions.errors import SessionStoreError
from cache_sessions.migration.base import BulkUnsupported
from cache_sessions.migration.copy import CopyReport, copy_all
from cache_sessions.migration.registry import build_source
from cache_sessions.storage.options import OUR_ENGINE, MigrateFrom
from cache_sessions.storage.registry import sessions_for


class Command(BaseCommand):
    help = (
        "Copy every live session of the old session store into the alias's, with its remaining expiry, "
        "and remove it from the old store. Never overwrites a session the alias already has."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            default=None,
            help="The old engine's dotted path, or a CACHES alias (default: the alias's OPTIONS['MIGRATE_FROM']).",
        )
        parser.add_argument("--alias", default=None, help="CACHES alias to copy into (default: SESSION_CACHE_ALIAS).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be copied; change nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Sessions read per batch (default 500).")
        parser.add_argument(
            "--max-seconds", type=float, default=None, help="Stop after this long (run again to go on)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["alias"] or settings.SESSION_CACHE_ALIAS
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if not options["dry_run"] and settings.SESSION_ENGINE != OUR_ENGINE:
            raise CommandError(
                f"SESSION_ENGINE is {settings.SESSION_ENGINE!r}: switch the site to {OUR_ENGINE!r} (with "
                f"MIGRATE_FROM on) first. Sessions copied while the old engine still serves requests would go stale."
            )
        try:
            sessions = sessions_for(alias)
            spec = MigrateFrom.parse(options["source"]) or sessions.options.migrate_from
            if spec is None:
                raise CommandError(f"Give --from, or set CACHES[{alias!r}]['OPTIONS']['MIGRATE_FROM'].")
            source = build_source(spec, sessions, alias)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        tty = self.stderr.isatty() if hasattr(self.stderr, "isatty") else sys.stderr.isatty()
        try:
            report = copy_all(
                source,
                sessions,
                batch_size=options["batch_size"],
                max_seconds=options["max_seconds"],
                dry_run=options["dry_run"],
                progress=self.progress if tty else None,
            )
        except BulkUnsupported as exc:
            raise CommandError(f"{exc}. Keep MIGRATE_FROM on: each session moves on its next request.") from exc
        except SessionStoreError as exc:
            raise CommandError(f"Stopped: {exc}. Run the command again to go on where it stopped.") from exc
        if tty:
            self.stderr.write("")
        self.summary(report, source, options["dry_run"])

    def progress(self, report: CopyReport) -> None:
        failed = sum(report.failed.values())
        self.stderr.write(
            f"\r{report.seen} seen, {report.copied} copied, {report.expired} expired, {failed} failed", ending=""
        )
        self.stderr.flush()

    def summary(self, report: CopyReport, source: object, dry_run: bool) -> None:
        failed = sum(report.failed.values())
        verb = "would copy" if dry_run else "copied"
        self.stdout.write(
            f"From {source}: {report.seen} sessions seen, {report.copied} {verb}, {report.existing} already here "
            f"(kept), {report.expired} skipped as expired, {failed} failed; {report.seconds:.2f} s "
            f"({report.rate:,.0f} sessions/s)" + ("" if report.finished else "; stopped at --max-seconds: run again")
        )
        for reason, count in report.failed.most_common():
            self.stdout.write(f"  failed: {count} x {reason}")
