"""How the example site's pages put Redis facts into words (example_project/shop/redis_info.py)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "example_project" / "shop" / "redis_info.py"
_spec = importlib.util.spec_from_file_location("demo_redis_info", _PATH)
assert _spec and _spec.loader
redis_info = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(redis_info)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (b":s1:h{2f3a}", ":s1:h{2f3a}"),
        # An overflow key: bucket, colon, then the field's raw digest bytes.
        (b":s1:h{2f3a}:\x00\x9f\xff a\n", ":s1:h{2f3a}:\\x00\\x9f\\xff a\\x0a"),
        (b"back\\slash", "back\\\\slash"),  # doubled: the text maps back to one name
        # Past ASCII, every byte is escaped: binary that happens to be UTF-8 reads as rare letters.
        (b":\xdd\x9d", ":\\xdd\\x9d"),
        ("café".encode(), "caf\\xc3\\xa9"),
    ],
)
def test_printable_escapes_only_what_cannot_be_read(name: bytes, text: str) -> None:
    assert redis_info.printable(name) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (14 * 86400 - 1, "13 days, 23 hours"),
        (14 * 86400, "14 days"),
        (86400 + 61, "1 day"),  # not "1 day, 1 minute": the second unit is the next one down
        (3600 + 61, "1 hour, 1 minute"),
        (59, "59 seconds"),
        (0, "0 seconds"),
    ],
)
def test_duration_names_the_two_largest_units(seconds: int, text: str) -> None:
    assert redis_info.duration(seconds) == text


def test_ttl_replies_in_words(settings) -> None:
    settings.TIME_ZONE = "UTC"  # as in the example site
    assert redis_info.ttl(-2)["relative"] == "no such key"
    assert redis_info.ttl(-1)["relative"] == "never (no TTL)"
    shown = redis_info.ttl(3600 + 30)
    assert shown["relative"] == "in 1 hour"  # seconds are below the unit after hours
    assert shown["seconds"] == "3630"
    expires_at = int(time.time()) + 90
    assert redis_info.when(expires_at)["absolute"] == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at))


@pytest.mark.parametrize(
    ("encoding", "text"),
    [(b"listpack", "listpack"), (b"ziplist", "listpack (Redis 6.2 calls it ziplist)"), (b"hashtable", "hashtable")],
)
def test_encoding_explains_redis_62s_name(encoding: bytes, text: str) -> None:
    assert redis_info.encoding(encoding) == text


def test_server_name_is_valkeys_own_version() -> None:
    assert redis_info.server_name({"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "9.1.2"}) == (
        "Valkey 9.1.2"
    )
    assert redis_info.server_name({"redis_version": "7.0.15"}) == "Redis 7.0.15"


def test_address_names_the_socket_or_the_host() -> None:
    unix = redis_info.address({"path": "/tmp/x/redis.sock", "db": 1})
    assert unix == {"kind": "unix socket", "where": "/tmp/x/redis.sock", "db": "1"}
    assert redis_info.address({"host": "127.0.0.1", "port": 6390, "db": 0})["where"] == "127.0.0.1:6390"
