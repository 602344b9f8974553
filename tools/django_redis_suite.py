"""django-redis's own test suite, run against a Redis Cluster (``make django-redis-suite``).

Their settings point at one server (127.0.0.1:6379). This script starts a
3-primary cluster (``tests/support/clusters.py``), downloads the sdist of the
installed django-redis (``pip download``: its tests ship in it), and runs
their tests unchanged with a cluster variant of their ``settings.sqlite``:
the same four aliases, each on ``cache_sessions.cluster.ClusterClient``.
Only the ``[sqlite]`` parametrization runs (the others are their serializer,
compressor, Sentinel, sharding and socket variants). Needs pytest-mock and
pytest-xdist (their conftest imports it); the make target installs both.

    python -m tools.django_redis_suite [--source DIR] [pytest args...]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tests.support.clusters import Cluster

SETTINGS = """
SECRET_KEY = "django_tests_secret_key"
URLS = {urls!r}
OPTIONS = {{"CLIENT_CLASS": "cache_sessions.cluster.ClusterClient"}}
CACHES = {{
    "default": {{"BACKEND": "django_redis.cache.RedisCache", "LOCATION": URLS, "OPTIONS": dict(OPTIONS)}},
    "doesnotexist": {{
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:56379",
        "OPTIONS": dict(OPTIONS),
    }},
    "sample": {{"BACKEND": "django_redis.cache.RedisCache", "LOCATION": ",".join(URLS), "OPTIONS": dict(OPTIONS)}},
    "with_prefix": {{
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": URLS,
        "OPTIONS": dict(OPTIONS),
        "KEY_PREFIX": "test-prefix",
    }},
}}
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
USE_TZ = False
"""

PLUGIN = """
import sys

import cluster_settings


def pytest_configure(config):
    # Their cache fixture imports "settings.<name>": the cluster variant stands in for "sqlite".
    sys.modules["settings.sqlite"] = cluster_settings


def pytest_collection_modifyitems(config, items):
    def wanted(item):
        callspec = getattr(item, "callspec", None)
        return callspec is None or callspec.params.get("cache_settings", "sqlite") == "sqlite"

    deselected = [item for item in items if not wanted(item)]
    items[:] = [item for item in items if wanted(item)]
    config.hook.pytest_deselected(items=deselected)
"""


def fetch_source(directory: Path) -> Path:
    """The unpacked sdist of the installed django-redis (its tests are in it)."""
    version = importlib.metadata.version("django-redis")
    command = [sys.executable, "-m", "pip", "download", "-q", f"django-redis=={version}"]
    subprocess.run([*command, "--no-binary", ":all:", "--no-deps", "-d", str(directory)], check=True)
    archive = next(directory.glob("django_redis-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return directory / archive.name.removesuffix(".tar.gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, help="an unpacked django-redis sdist or checkout (default: download)")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="django-redis-suite-") as scratch, Cluster(primaries=3) as cluster:
        source = args.source or fetch_source(Path(scratch))
        (Path(scratch) / "cluster_settings.py").write_text(SETTINGS.format(urls=cluster.urls))
        (Path(scratch) / "django_redis_cluster_plugin.py").write_text(PLUGIN)
        here = str(Path(__file__).resolve().parent.parent)  # cache_sessions, importable from the checkout
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([scratch, here, os.environ.get("PYTHONPATH", "")])}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        command = [sys.executable, "-m", "pytest", "-p", "django_redis_cluster_plugin", "-p", "no:cacheprovider"]
        targets = [] if any(not arg.startswith("-") for arg in pytest_args) else ["tests"]
        command += ["-o", "addopts=", "-q", "-rfE", *targets, *pytest_args]
        return subprocess.run(command, cwd=source, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
