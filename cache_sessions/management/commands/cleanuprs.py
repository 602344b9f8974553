"""``manage.py cleanuprs``: sweep expired sessions out of hash buckets."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cache_sessions.storage.advice import advise, label
from cache_sessions.storage.buckets import HashStorage
from cache_sessions.storage.registry import sessions_for
from cache_sessions.storage.sweep import (
    BucketStats,
    SweepReport,
    all_buckets,
    bucket_stats,
    sample_buckets,
    session_buckets,
    sweep,
)

if TYPE_CHECKING:
    from redis import Redis


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
        if not isinstance(sessions, HashStorage) and not sessions.options.user_sessions:
            self.stdout.write(
                f"CACHES[{alias!r}] stores sessions as strings (USE_HASH=False): "
                "Redis expires them itself, nothing to sweep."
            )
            return
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        # Server by server: a partitioned alias reports each, then the total.
        servers = sessions.servers()
        several = len(servers) > 1
        if options["stats"]:
            if not isinstance(sessions, HashStorage):
                raise CommandError("--stats reports on hash mode's buckets; this alias uses string mode.")
            total = BucketStats()
            for redis in servers:
                stats = bucket_stats(sessions, session_buckets(sessions, [redis]), server=redis)
                total.add(stats)
                if several:
                    self.stdout.write(f"{label(redis)}:")
                    self.report_stats(stats, indent="  ")
            if several:
                self.stdout.write(f"all {len(servers)} servers:")
            self.report_stats(total, indent="  " if several else "")
            for advice in advise(sessions):
                self.stdout.write("\n".join(advice.lines(sessions.options.field_ttl)))
            return
        groups: list[tuple[Redis, Iterable[bytes]]]
        if options["all"]:
            groups = [(redis, all_buckets(sessions, [redis])) for redis in servers]
        else:
            groups = [*sessions.by_server(sample_buckets(sessions, options["sample"]))]
        tty = self.stderr.isatty() if hasattr(self.stderr, "isatty") else sys.stderr.isatty()
        report, started = SweepReport(), time.monotonic()
        for redis, buckets in groups:
            left = None if options["max_seconds"] is None else options["max_seconds"] - (time.monotonic() - started)
            part = sweep(
                sessions,
                buckets,
                batch_size=options["batch_size"],
                max_seconds=left,
                dry_run=options["dry_run"],
                progress=self.progress if tty else None,
            )
            report.add(part)
            if several:
                self.stdout.write(f"{label(redis)}: {self.summary(part, options['dry_run'])}")
        if tty:
            self.stderr.write("")
        self.stdout.write(("all servers: " if several else "") + self.summary(report, options["dry_run"]))
        if isinstance(sessions, HashStorage) and sessions.field_ttls():
            self.stdout.write(
                "Sessions are written with field TTLs here: Redis removes them itself, nothing to sweep. "
                "This pass removes what was written with the script (an expiry in the value), before the "
                "upgrade or by older processes; once none is left, running cleanuprs is no longer needed."
            )

    def summary(self, report: SweepReport, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        return (
            f"{report.buckets} buckets scanned, {report.fields} fields seen, {report.expired} expired {verb}, "
            f"{report.seconds:.2f} s ({report.calls} calls, longest {report.longest_call * 1000:.1f} ms)"
            + ("" if report.finished else "; stopped at --max-seconds")
        )

    def progress(self, report: SweepReport) -> None:
        self.stderr.write(f"\r{report.buckets} buckets, {report.fields} fields, {report.expired} expired", ending="")
        self.stderr.flush()

    def report_stats(self, stats: BucketStats, indent: str = "") -> None:
        average = stats.fields / stats.buckets if stats.buckets else 0
        encodings = ", ".join(f"{name} {count}" for name, count in sorted(stats.encodings.items())) or "none"
        lines = [
            f"sessions (fields): {stats.fields}",
            f"buckets: {stats.buckets} (fields per bucket: average {average:.1f}, max {stats.max_fields})",
            f"bucket encodings: {encodings}",
            f"overflow keys (sessions too big for a bucket): {stats.overflow_keys}",
            f"memory: {stats.bucket_bytes + stats.overflow_bytes} bytes, "
            f"{stats.bytes_per_session:.1f} bytes per session",
        ]
        self.stdout.write("\n".join(indent + line for line in lines))
