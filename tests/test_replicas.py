"""MIN_REPLICAS_ACK: each session write is followed by WAIT in the same round trip, and a
write too few replicas confirmed is an error (a 503), not a silent risk."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.storage.options import SessionOptions
from cache_sessions.testing import RedisServer
from tests.support.configs import _config
from tests.support.fault_servers import durable_server, in_sync, replica_of
from tests.support.redis_stats import sent_by_clients

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = durable_server(appendonly="no")
    replica = replica_of(primary)
    # The link is up, but Redis 7.0 counts a replica for WAIT only after its first ACK (~1 s).
    Redis(port=primary.port).set("warm-up", 1)
    in_sync(Redis(port=primary.port))
    Redis(port=primary.port).delete("warm-up")
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture(params=[False, True], ids=["string", "hash"])
def acked(request, pair) -> Iterator[Redis]:
    """The ``sessions`` alias on the primary, with MIN_REPLICAS_ACK = 1; yields the replica."""
    primary, replica = pair
    config = {**_config(0, USE_HASH=request.param, MIN_REPLICAS_ACK=1, MIN_REPLICAS_ACK_TIMEOUT=0.05)}
    config["LOCATION"] = f"{primary.url}/0"
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        yield Redis(port=replica.port)
        Redis(port=primary.port).flushdb()


def test_each_write_waits_for_the_replica_in_the_same_round_trip(acked):
    session = SessionStore()
    session["n"] = 1
    session.save()
    SessionStore().delete("z" * 32)  # every script loaded, facts known
    for operation in ("create", "save", "delete"):
        with sent_by_clients() as sent:
            if operation == "create":
                SessionStore().create()
            elif operation == "save":
                session["n"] += 1
                session.save()
            else:
                SessionStore().delete(session.session_key)
        assert sent.round_trips == 1, operation
        assert sent.commands["wait"] == 1, (operation, sent.commands)
        # The write (SET, DEL, a script, or with field TTLs HSETEX + EXPIRE, HDEL + DEL) and its WAIT, last.
        assert sum(sent.commands.values()) == (3 if {"hsetex", "hdel"} & set(sent.commands) else 2)
    assert acked.dbsize() >= 1  # the replica had the writes when they returned
    with sent_by_clients() as sent:
        SessionStore(session.session_key).load()
        SessionStore().exists(session.session_key)
    assert sent.commands["wait"] == 0  # reads never wait


def test_a_pipeline_that_writes_ends_with_one_wait(pair, acked):
    """execute_many (a session and its index entry deleted together, say): one WAIT per pipeline."""
    storage = SessionStore()._storage
    keys = []
    for _ in range(3):
        session = SessionStore()
        session.create()
        keys.append(session.session_key)
    with sent_by_clients() as sent:
        storage.execute_many([storage.delete_call(key) for key in keys[:2]])
    assert (sent.round_trips, sent.commands["wait"]) == (1, 1)
    with sent_by_clients() as sent:
        storage.execute_many([storage.exists_call(key) for key in keys])  # reads: no WAIT
    assert sent.commands["wait"] == 0
    _, replica = pair
    replica.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(SessionStoreUnavailable, match="MIN_REPLICAS_ACK"):
            storage.execute_many([storage.delete_call(keys[2])])
    finally:
        replica.process.send_signal(signal.SIGCONT)


def test_a_write_too_few_replicas_confirm_is_an_error(pair, acked, caplog):
    _, replica = pair
    session = SessionStore()
    session["n"] = 1
    session.save()
    replica.process.send_signal(signal.SIGSTOP)
    try:
        session["n"] = 2
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "cache_sessions"), pytest.raises(SessionStoreUnavailable) as info:
            session.save()
        assert time.monotonic() - started < 0.5  # the WAIT timeout (50 ms), not retried
    finally:
        replica.process.send_signal(signal.SIGCONT)
    assert "MIN_REPLICAS_ACK" in str(info.value) and "0 of the 1 replicas" in str(info.value)
    assert "reached 0 of the 1 replicas" in caplog.text
    assert SessionStore(session.session_key)["n"] == 2  # it is on the primary; it may not survive a failover
    session["n"] = 3
    session.save()  # the replica is back: writes are confirmed again


def test_a_flushed_script_is_reloaded_inside_the_waiting_round_trip(pair, acked):
    SessionStore().create()
    Redis(port=pair[0].port).script_flush()
    session = SessionStore()
    session["x"] = 1
    session.save()
    assert SessionStore(session.session_key)["x"] == 1


async def test_the_async_path_waits_too(acked):
    session = SessionStore()
    await session.aset("n", 1)
    await session.asave()
    with sent_by_clients() as sent:
        await session.aset("n", 2)
        await session.asave()
    assert (sent.round_trips, sent.commands["wait"]) == (1, 1)


def test_sweeps_do_not_wait(acked):
    if not SessionStore()._storage.options.use_hash:
        pytest.skip("string mode has nothing to sweep")
    SessionStore().create()
    with sent_by_clients() as sent:
        call_command("clearsessions")
    assert sent.commands["evalsha"] and not sent.commands["wait"]


@pytest.mark.parametrize(
    "options",
    [{"MIN_REPLICAS_ACK": -1}, {"MIN_REPLICAS_ACK": True}, {"MIN_REPLICAS_ACK": "1"}]
    + [{"MIN_REPLICAS_ACK": 1, "MIN_REPLICAS_ACK_TIMEOUT": value} for value in (0, -1, math.nan, "0.1", None)],
    ids=str,
)
def test_bad_values_are_refused(options):
    with pytest.raises(ImproperlyConfigured, match="MIN_REPLICAS_ACK"):
        SessionOptions.from_options(options)


def test_off_by_default_and_rounded_to_whole_milliseconds():
    assert SessionOptions.from_options({}).acks is None
    acks = SessionOptions.from_options({"MIN_REPLICAS_ACK": 2, "MIN_REPLICAS_ACK_TIMEOUT": 0.0001}).acks
    assert acks is not None and (acks.replicas, acks.timeout_ms) == (2, 1)


def test_refused_on_a_cluster_until_it_is_supported():
    from tests.support.configs import _cluster_config

    cluster = override_settings(CACHES={"default": LOCMEM, "sessions": _cluster_config(MIN_REPLICAS_ACK=1)})
    with cluster, pytest.raises(ImproperlyConfigured, match="min-replicas-to-write"):
        SessionStore()._storage  # noqa: B018
