"""Writes the docs/ pages from README.md's sections, for the move of the reference out of README (issue 19).

    .venv/bin/python tools/split_readme.py            # writes docs/*.md
    .venv/bin/python tools/split_readme.py --mapping  # prints which README heading went into which page

Each page is a title, a one-paragraph summary and the text of README sections
as they are, with the README's ``(#anchor)`` links pointing at the page (and
the anchor) where that section now lives. A page made of one README section
drops that section's heading (the page title stands for it) and raises its
subsections one level. A README heading that no page takes is an error, so
a section added to README since is not lost. What a page says beyond the
README (after its ``OWN`` line) is kept. Meant to be run again while README
still holds the reference, then deleted once docs/ is the source.
Needs the ``markdown`` package (the ``docs`` extra) for MkDocs' own anchors.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^\s*```")
HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
LINK = re.compile(r"\]\(#([^)\s]+)\)")
# A page's own text (not from README) follows this line, and is kept when the page is written again.
OWN = "<!-- Written for this page, not taken from README.md: tools/split_readme.py keeps what follows. -->"


@dataclass
class Take:
    """A README section (by its heading's text; ``""`` for the text before the first ``##``) and how it goes in."""

    heading: str
    lift: bool = False  # drop the heading: the page's title stands for it


@dataclass
class Page:
    file: str
    title: str
    summary: str
    takes: list[Take]
    drop: list[str] = field(default_factory=list)  # paragraphs (by their first words) left out


README_ONLY = ["Contents:"]  # the navigation replaces README's contents line

PAGES = [
    Page(
        "index.md",
        "cache_sessions",
        "",  # README's own first paragraph is the summary
        [Take("", lift=True)],
        drop=README_ONLY,
    ),
    Page(
        "install.md",
        "Install and quick start",
        "Install cache_sessions from a checkout, add a cache alias for the sessions and point `SESSION_ENGINE` "
        "at it: the settings below are all a site needs to start, and `manage.py check` says at startup what is "
        "missing.",
        [Take("Install"), Take("Quick start")],
    ),
    Page(
        "configuration.md",
        "Configuration",
        "Every session option lives in the `OPTIONS` of the cache alias that holds the sessions, beside "
        "django-redis's own. This page lists them with their defaults; where the sessions live (one server, "
        "Sentinel, a cluster, several servers) is set by the alias itself, and each of those has a page of its own.",
        [Take("Options", lift=True)],
    ),
    Page(
        "storage.md",
        "Storage modes",
        "Sessions are stored in one of two modes: string mode keeps each session under a Redis key of its own; "
        "hash mode (the default) keeps it as a field of one of many bucket hashes, which Redis stores compactly. "
        "This page covers how session names are built, the bytes of a stored value, hash mode's buckets and the "
        "Redis configuration it needs, cleaning up expired sessions, and buckets for records of your own.",
        [Take("Keys"), Take("The stored value"), Take("Hash mode")],
    ),
    Page(
        "performance.md",
        "Performance",
        "Round trips, client CPU, Redis CPU and wall clock per session operation, measured against Django's cache "
        "engine and django-redis-sessions, what the engine reaches and what it does not, and how to run the "
        "benchmarks yourself. The figures come from a shared 2-core machine: read the medians and the ratios.",
        [Take("Performance", lift=True)],
    ),
    Page(
        "failures.md",
        "When Redis fails",
        "What the engine does when Redis cannot answer: which failures are retried and how, which exception each "
        "one raises, which timeouts to set, and what the user sees with cache_sessions' middleware (a 503 with "
        "`Retry-After`, or, opt-in, a read-only empty session for pages that only read), never a silent logout.",
        [Take("When Redis fails", lift=True)],
    ),
    Page(
        "security.md",
        "Security and durability",
        "What someone who can write to Redis can and cannot do, the least a Redis ACL user needs in each mode, "
        "TLS, and the Redis configuration that keeps sessions through memory pressure, crashes and failovers.",
        [Take("Security and durability", lift=True)],
    ),
    Page(
        "connecting.md",
        "Connecting",
        "All connection settings are django-redis's: a `LOCATION` URL plus `OPTIONS`. This page shows the common "
        "forms (host and port, TLS, unix sockets, passwords, timeouts) and maps the settings of django-redisession "
        "and django-redis-sessions onto them.",
        [Take("Connecting: URLs, sockets, passwords, timeouts", lift=True)],
    ),
    Page(
        "cluster.md",
        "Redis Cluster",
        "One cache alias on a Redis Cluster (or a Valkey cluster) serves both the cache and the sessions, in either "
        "storage mode. This page covers the settings, what differs from django-redis on one server, how sessions "
        "spread over the cluster, and what a failover costs, measured.",
        [Take("Redis Cluster", lift=True)],
    ),
    Page(
        "sentinel.md",
        "Sentinel",
        "Sessions on a Redis Sentinel service, following its failovers as they happen so that no acknowledged "
        "save is lost, and `MIN_REPLICAS_ACK` for writes that replicas must confirm; measured against "
        "django-redis's own Sentinel client.",
        [Take("Sentinel", lift=True)],
    ),
    Page(
        "partitioning.md",
        "Partitioning across servers",
        "Several independent Redis servers in one alias, each with a weight: sessions and cache keys are placed "
        "by weighted rendezvous hashing, so adding, removing or reweighting a server moves as few sessions as "
        "possible.",
        [Take("Partitioning across servers", lift=True)],
    ),
    Page(
        "async.md",
        "Async",
        "The engine's async methods run on `redis.asyncio` in the event loop, with no thread hop: one round trip "
        "each, as in sync. This page says how the asyncio clients are made and kept, which topologies are native "
        "so far, and what it gains, measured in one process and under an ASGI server.",
        [Take("Async", lift=True)],
    ),
    Page(
        "users.md",
        "Sessions per user",
        "With `USER_SESSIONS`, the engine keeps an index of each user's sessions: list where a user is logged in, "
        "log out their other devices, or end every session of an account, without scanning Redis. Optional "
        "metadata adds when each session was created and last seen, its IP address and its device.",
        [Take("Sessions per user", lift=True)],
    ),
    Page(
        "migration.md",
        "Migrating without logging anyone out",
        "Switch to cache_sessions from Django's database, cache, file or signed-cookie engines, "
        "django-redis-sessions or django-redisession, or between two layouts of cache_sessions, without logging "
        "anyone out: sessions move on first use (`MIGRATE_FROM`) and in bulk (`migratesessions`).",
        [Take("Migrating to cache_sessions without logging anyone out", lift=True)],
    ),
    Page(
        "operations.md",
        "Operations",
        "What to run, heed and watch on a production site: the management commands, every system check with the "
        "page that explains it, and where sessions are read from.",
        [Take("Operations", lift=True)],
    ),
    Page(
        "example-site.md",
        "The example site",
        "A small shop that keeps its sessions in Redis with cache_sessions, run with one command and nothing to "
        "install but Python: log in, fill a cart, see where and how the session is stored, and log out your "
        "other devices.",
        [Take("Try it: the example site", lift=True)],
    ),
]
NOT_IN_DOCS = {"Tests": "contributing.md#tests"}  # README headings that go elsewhere: CONTRIBUTING.md


@dataclass
class Section:
    level: int  # 1 for the text before the first "##"
    heading: str
    lines: list[str]  # the heading line first (none for the first section)


def sections(readme: str) -> list[Section]:
    found = [Section(1, "", [])]
    in_fence = False
    for line in readme.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match and len(match.group(1)) >= 2:
            found.append(Section(len(match.group(1)), match.group(2), [line]))
        elif not (match and not found[-1].lines and found[-1].level == 1):  # README's own "# title"
            found[-1].lines.append(line)
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a README heading."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:
    return slugify(heading.replace("`", ""), "-")


def subtree(all_sections: list[Section], heading: str) -> list[Section]:
    """The section under ``heading`` and every section below it."""
    start = next((i for i, s in enumerate(all_sections) if s.heading == heading), None)
    if start is None:
        raise SystemExit(f"split_readme: README has no heading {heading!r} any more")
    level, end = all_sections[start].level, start + 1
    while end < len(all_sections) and all_sections[end].level > level:
        end += 1
    return all_sections[start:end]


def shifted(section: Section, by: int) -> list[str]:
    lines = list(section.lines)
    if lines and section.heading:
        lines[0] = "#" * (section.level - by) + " " + section.heading
    return lines


def build(readme: str) -> tuple[dict[str, str], dict[str, str]]:
    """The pages' text by file name, and where each README heading went (its README anchor -> a docs link)."""
    all_sections = sections(readme)
    where: dict[str, str] = {}  # README anchor -> "page.md" or "page.md#anchor"
    bodies: dict[str, list[str]] = {}
    taken: set[str] = set()
    for page in PAGES:
        body: list[str] = []
        for take in page.takes:
            tree = subtree(all_sections, take.heading) if take.heading else [all_sections[0]]
            top = tree[0]
            by = top.level - 1 if take.lift else top.level - 2
            for section in tree:
                taken.add(section.heading)
                lines = shifted(section, by)
                if section is top and take.lift:
                    lines = lines[1:] if top.heading else lines
                    where[github_slug(top.heading)] = page.file
                else:
                    where[github_slug(section.heading)] = f"{page.file}#{mkdocs_slug(section.heading)}"
                body += lines
        bodies[page.file] = body
    missing = [s.heading for s in all_sections if s.heading and s.heading not in taken | NOT_IN_DOCS.keys()]
    if missing:
        raise SystemExit(f"split_readme: README headings no page takes (add them to PAGES): {missing}")
    for heading, place in NOT_IN_DOCS.items():
        where[github_slug(heading)] = place
    pages = {}
    for page in PAGES:
        text = "\n".join(body_lines(bodies[page.file], page)).strip("\n")
        text = LINK.sub(lambda m, page=page: "](" + docs_link(m.group(1), page.file, where) + ")", text)
        head = f"# {page.title}\n\n" + (textwrap.fill(page.summary, 78) + "\n\n" if page.summary else "")
        pages[page.file] = head + text + "\n" + own_text(ROOT / "docs" / page.file)
    return pages, where


def own_text(path: Path) -> str:
    """The page's own part, from the ``OWN`` line on, as the page now has it ("" if none)."""
    text = path.read_text() if path.exists() else ""
    return "\n" + text[text.index(OWN) :] if OWN in text else ""


def body_lines(lines: list[str], page: Page) -> list[str]:
    """The lines without the paragraphs the page drops."""
    out: list[str] = []
    skipping = False
    for line in lines:
        if any(line.startswith(words) for words in page.drop):
            skipping = True
        if skipping:
            skipping = bool(line.strip())
            continue
        out.append(line)
    return out


def docs_link(anchor: str, page: str, where: dict[str, str]) -> str:
    target = where.get(anchor)
    if target is None:
        raise SystemExit(f"split_readme: {page} links to #{anchor}, which no page holds")
    file, _, fragment = target.partition("#")
    if file == page:
        return f"#{fragment}" if fragment else "#"
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mapping", action="store_true", help="print where each README heading went, write nothing")
    args = parser.parse_args()
    pages, where = build((ROOT / "README.md").read_text())
    if args.mapping:
        for section in sections((ROOT / "README.md").read_text()):
            name = section.heading or "(the text before Install)"
            print(f"{'#' * max(section.level, 1)} {name} -> {where.get(github_slug(section.heading), 'index.md')}")
        return
    for name, text in pages.items():
        (ROOT / "docs" / name).write_text(text)
        print(f"docs/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
