from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from redis import Redis

from cache_sessions.topology import server_facts as facts
from tests.support.configs import CONFIGS
from tests.support.partitions import raw


@pytest.fixture(autouse=True)
def _fresh_server_facts() -> None:
    """Each test learns the servers' facts (listpack limits...) anew: some tests reconfigure them."""
    facts.forget()


@pytest.fixture(params=sorted(CONFIGS))
def alias_config(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Run the test once per configuration, as the ``sessions`` alias."""
    config = CONFIGS[request.param]
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "sessions": config}
    ):
        yield config
        raw("sessions").flushdb()


@pytest.fixture
def redis(alias_config: dict[str, Any]) -> Redis:
    """The raw client of the alias under test (on a partitioned alias, a view over every server)."""
    return raw("sessions")  # type: ignore[no-any-return]


@pytest.fixture
def SessionStore(alias_config: dict[str, Any]) -> type:
    from cache_sessions.backend import SessionStore

    return SessionStore


@pytest.fixture(params=[False, True], ids=["naive", "aware"])
def use_tz(request: pytest.FixtureRequest) -> Iterator[bool]:
    with override_settings(USE_TZ=request.param):
        yield request.param


def pytest_report_header(config: pytest.Config) -> list[str]:
    from tests.support import versions

    return [f"versions: {versions.line()}"]
