"""``manage.py cleanuprs``: sweep expired sessions out of hash buckets."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cache_sessions.buckets import HashSessions
from cache_sessions.client import sessions_for
from cache_sessions.sweep import (
    BucketStats,
    SweepReport,
    all_buckets,
    bucket_stats,
    sample_buckets,
    session_buckets,
    sweep,
)


class Command(BaseCommand):
    help = "Remove expired sessions from the hash buckets of a cache alias (hash mode)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", default=None, help="CACHES alias (default: SESSION_CACHE_ALIAS).")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="Sweep every bucket (found with SCAN).")
        which.add_argument(
            "--sample",
            type=int,
            default=100,
            metavar="N",
            help="Sweep N buckets chosen by HASH_KEYS_CHECK_FOR_EXPIRY (default: N random buckets; 100).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count expired sessions, remove nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Fields examined per Redis call (default 500).")
        parser.add_argument(
            "--max-seconds", type=float, default=None, help="Stop starting new buckets after this long."
        )
        parser.add_argument(
            "--stats", action="store_true", help="Report buckets, fields, encodings and memory; sweep nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["alias"] or settings.SESSION_CACHE_ALIAS
        try:
            sessions = sessions_for(alias)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if not isinstance(sessions, HashSessions) and not sessions.options.user_sessions:
            self.stdout.write(
                f"CACHES[{alias!r}] stores sessions as strings (USE_HASH=False): "
                "Redis expires them itself, nothing to sweep."
            )
            return
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        buckets = (
            all_buckets(sessions) if options["all"] or options["stats"] else sample_buckets(sessions, options["sample"])
        )
        if options["stats"]:
            if not isinstance(sessions, HashSessions):
                raise CommandError("--stats reports on hash mode's buckets; this alias uses string mode.")
            self.report_stats(bucket_stats(sessions, session_buckets(sessions)))
            return
        tty = self.stderr.isatty() if hasattr(self.stderr, "isatty") else sys.stderr.isatty()
        report = sweep(
            sessions,
            buckets,
            batch_size=options["batch_size"],
            max_seconds=options["max_seconds"],
            dry_run=options["dry_run"],
            progress=self.progress if tty else None,
        )
        if tty:
            self.stderr.write("")
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(
            f"{report.buckets} buckets scanned, {report.fields} fields seen, {report.expired} expired {verb}, "
            f"{report.seconds:.2f} s ({report.calls} calls, longest {report.longest_call * 1000:.1f} ms)"
            + ("" if report.finished else "; stopped at --max-seconds")
        )

    def progress(self, report: SweepReport) -> None:
        self.stderr.write(f"\r{report.buckets} buckets, {report.fields} fields, {report.expired} expired", ending="")
        self.stderr.flush()

    def report_stats(self, stats: BucketStats) -> None:
        average = stats.fields / stats.buckets if stats.buckets else 0
        encodings = ", ".join(f"{name} {count}" for name, count in sorted(stats.encodings.items())) or "none"
        self.stdout.write(
            f"sessions (fields): {stats.fields}\n"
            f"buckets: {stats.buckets} (fields per bucket: average {average:.1f}, max {stats.max_fields})\n"
            f"bucket encodings: {encodings}\n"
            f"overflow keys (sessions too big for a bucket): {stats.overflow_keys}\n"
            f"memory: {stats.bucket_bytes + stats.overflow_bytes} bytes, "
            f"{stats.bytes_per_session:.1f} bytes per session"
        )
