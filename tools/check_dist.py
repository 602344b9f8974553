"""Checks the sdist and wheel that ``make dist`` built, from a clean venv the wheel was installed into.

    python -I tools/check_dist.py dist

Run by that venv's interpreter in isolated mode (``-I``: neither the current
directory nor this script's is on ``sys.path``), so ``cache_sessions`` is the
installed wheel's, never the checkout's. Checks what each archive holds, then
imports every module of the package under a minimal Django configuration.
Exits non-zero, naming each problem, when one is found.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "cache_sessions"
# The wheel is the package only; the sdist carries the test suite and the example site too.
WHEEL_MUST_HOLD = [
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/management/commands/cleanuprs.py",
    f"{PACKAGE}/templates/{PACKAGE}/session_list.html",
    f"{PACKAGE}/templates/{PACKAGE}/admin/sessions.html",
    f"{PACKAGE}/locale/fr/LC_MESSAGES/django.mo",  # compiled: users need no gettext
]
SDIST_MUST_HOLD = [
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "Makefile",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/locale/fr/LC_MESSAGES/django.po",
    "tests/conftest.py",
    "example_project/manage.py",
]
NEVER = ["__pycache__", ".pyc", "db.sqlite3", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"]
NEVER_IN_SDIST_ROOT = ["site", "screenshots", "dist", "build"]


def main(dist: Path) -> list[str]:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return [f"{dist} should hold one wheel and one sdist: {[p.name for p in wheels + sdists]}"]
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0])
    return problems + check_imports(wheel_version(wheels[0]))


def check_wheel(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
    problems = [f"{path.name}: no {name}" for name in WHEEL_MUST_HOLD if name not in names]
    for name in names:
        top = name.split("/", 1)[0]
        if top != PACKAGE and not (top.startswith(f"{PACKAGE}-") and top.endswith(".dist-info")):
            problems.append(f"{path.name}: {name} is not part of the package")
        elif "/tests/" in name or "example_project" in name or any(bad in name for bad in NEVER):
            problems.append(f"{path.name}: {name} should not be in a wheel")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    problems = [f"{path.name}: no {name}" for name in SDIST_MUST_HOLD if name not in names]
    for name in names:
        if any(bad in name for bad in NEVER) or name.split("/", 1)[0] in NEVER_IN_SDIST_ROOT:
            problems.append(f"{path.name}: {name} should not be in an sdist")
    return problems


def wheel_version(path: Path) -> str:
    return path.name.split("-")[1]


def check_imports(version: str) -> list[str]:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.admin",  # cache_sessions.admin is imported too
            PACKAGE,
        ],
        CACHES={"sessions": {"BACKEND": f"{PACKAGE}.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/1"}},
        SESSION_ENGINE=f"{PACKAGE}.backend",
        SESSION_CACHE_ALIAS="sessions",
    )
    django.setup()
    package = importlib.import_module(PACKAGE)
    problems = []
    where = Path(package.__file__ or "").resolve().parent
    if where != Path(sysconfig.get_paths()["purelib"]).resolve() / PACKAGE:
        problems.append(f"{PACKAGE} was imported from {where}, not from the installed wheel")
    if package.__version__ != version:
        problems.append(f"{PACKAGE}.__version__ is {package.__version__}, the wheel's version {version}")
    # The engine and the middleware first (what settings name), then every other module.
    modules = [f"{PACKAGE}.backend", f"{PACKAGE}.middleware"]
    for path in sorted(where.rglob("*.py")):
        modules.append(".".join(path.relative_to(where.parent).with_suffix("").parts).removesuffix(".__init__"))
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # each failure is one line of the report
            problems.append(f"import {name}: {type(error).__name__}: {error}")
    return problems


if __name__ == "__main__":
    found = main(Path(sys.argv[1]))
    for problem in found:
        print(f"check_dist: {problem}", file=sys.stderr)
    if found:
        sys.exit(1)
    print("check_dist: wheel and sdist hold what they should; every module imports from the installed wheel")
