"""The translations shipped in the package: every marked string of each catalog translated,
and the committed ``.mo`` compiled from the committed ``.po`` (``make messages`` writes both).
Needs GNU gettext (``apt-get install gettext``), as ``makemessages`` does; skipped without it.
The pages in French are tested where they are rendered (test_session_views, test_session_admin).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cache_sessions"
LOCALES = sorted(path.name for path in (PACKAGE / "locale").iterdir())

pytestmark = pytest.mark.skipif(
    not (shutil.which("msgfmt") and shutil.which("xgettext")), reason="no GNU gettext: apt-get install gettext"
)


def untranslated(po: str) -> list[str]:
    """The msgids of a catalog whose translation is missing or fuzzy (the header aside)."""
    found = []
    for entry in po.split("\n\n")[1:]:
        fields = strings(entry)
        translations = [value for name, value in fields.items() if name.startswith("msgstr")]
        if "#, fuzzy" in entry or not all(translations):
            found.append(fields["msgid"])
    return found


def strings(entry: str) -> dict[str, str]:
    """``{"msgid": ..., "msgstr": ...}`` of one entry, each string's continuation lines joined."""
    fields: dict[str, str] = {}
    name = ""
    for line in entry.splitlines():
        if line.startswith("msg"):
            name, _, quoted = line.partition(" ")
            fields[name] = quoted[1:-1]
        elif line.startswith('"') and name:
            fields[name] += line[1:-1]
    return fields


def test_french_is_shipped():
    assert "fr" in LOCALES


@pytest.mark.parametrize("locale", LOCALES)
def test_every_marked_string_is_translated(locale, tmp_path):
    """makemessages run on a copy of the package finds nothing the committed catalog lacks."""
    copy = tmp_path / "cache_sessions"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    django_admin = [sys.executable, "-m", "django"]
    subprocess.run(
        [*django_admin, "makemessages", f"--locale={locale}", "--no-obsolete", "--add-location=file"],
        cwd=copy,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},  # as make messages runs it
        check=True,
        capture_output=True,
    )
    catalog = f"locale/{locale}/LC_MESSAGES/django.po"
    fresh = (copy / catalog).read_text()
    assert untranslated(fresh) == [], f"run `make messages` and translate these in cache_sessions/{catalog}"
    assert body(fresh) == body((PACKAGE / catalog).read_text()), f"cache_sessions/{catalog} is not up to date"


def body(po: str) -> str:
    """A catalog without its header (whose creation date changes at every run)."""
    return po.split("\n\n", 1)[1]


@pytest.mark.parametrize("locale", LOCALES)
def test_the_mo_is_compiled_from_the_po(locale, tmp_path):
    messages = PACKAGE / "locale" / locale / "LC_MESSAGES"
    subprocess.run(["msgfmt", "--check-format", "-o", tmp_path / "django.mo", messages / "django.po"], check=True)
    assert (tmp_path / "django.mo").read_bytes() == (messages / "django.mo").read_bytes(), "run `make messages`"
