"""A Redis Cluster that stays down (no replica to promote): every session operation
answers within ``OPERATION_TIMEOUT`` with ``SessionStoreUnavailable``, whatever redis-py
does inside (its own retries, topology refreshes and sleeps), and whether the node is
dead, hung, or every node is gone. Also: the option's checks.

Each scenario prints the slowest answer (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from redis import Redis
from redis.cluster import RedisCluster

from cache_sessions import cluster as cluster_module
from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.storage.index import IndexEntry
from cache_sessions.storage.registry import sessions_for
from cache_sessions.testing import RedisServer
from cache_sessions.topology import deadline, server_facts
from tests.support.clusters import Cluster, cluster_state, wait_for
from tests.support.configs import _config

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
BOUND = 0.5  # OPERATION_TIMEOUT here (the smallest it may be), seconds
MARGIN = 1.0  # what a loaded machine may add (scheduling), seconds


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """3 primaries and no replica: a primary lost stays lost."""
    cluster = Cluster(primaries=3).start()
    yield cluster
    cluster_module.close_all()
    cluster.stop()


def config(cluster: Cluster, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": cluster.urls,
        "OPTIONS": {
            "CLIENT_CLASS": "cache_sessions.cluster.ClusterClient",
            "SOCKET_TIMEOUT": 1,
            "SOCKET_CONNECT_TIMEOUT": 1,
            "OPERATION_TIMEOUT": BOUND,
            **options,
        },
    }


def saved_sessions(count: int) -> list[str]:
    keys = []
    for _ in range(count):
        session = SessionStore()
        session["n"] = 1
        session.save()
        assert session.session_key is not None
        keys.append(session.session_key)
    return keys


def port_of(session_key: str) -> int:
    """The port of the primary holding ``session_key``."""
    name = sessions_for("sessions").locate(session_key)[0]
    return int(caches["sessions"].client.get_client().get_node_from_key(name).port)


def keys_on(server: RedisServer, count: int) -> list[str]:
    """``count`` new session keys whose sessions live on ``server``."""
    keys: list[str] = []
    while len(keys) < count:
        key = SessionStore()._get_new_session_key()
        if port_of(key) == server.port:
            keys.append(key)
    return keys


def operations(keys: list[str]) -> list[tuple[str, Callable[[], Any]]]:
    """A load, an async load, a save, a create and a delete of each session of ``keys``
    (the created one gets the key too)."""

    def save(key: str) -> None:
        session = SessionStore(key)
        session._session_cache = {"n": 2}  # as if loaded before the outage
        session.save()

    def create(key: str) -> None:
        session = SessionStore()
        session._get_new_session_key = lambda: key  # type: ignore[method-assign]
        session.create()

    kinds: dict[str, Callable[[str], Any]] = {
        "load": lambda key: SessionStore(key).load(),
        "aload": lambda key: asyncio.run(SessionStore(key).aload()),
        "save": save,
        "create": create,
        "delete": lambda key: SessionStore(key).delete(),
    }
    return [(kind, partial(function, key)) for key in keys for kind, function in kinds.items()]


def answers_within_the_bound(keys: list[str], what: str) -> None:
    """Every operation raises SessionStoreUnavailable, within BOUND + MARGIN."""
    times = []
    for kind, operation in operations(keys):
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable):
            operation()
        times.append((time.monotonic() - started, kind))
    fastest, slowest = min(times), max(times)
    print(f"\n{what}: {len(times)} operations, each a SessionStoreUnavailable in {fastest[0]:.2f}-{slowest[0]:.2f} s")
    assert slowest[0] < BOUND + MARGIN, slowest


def test_a_cluster_that_stays_down_answers_every_operation_within_the_bound(cluster):
    with override_settings(CACHES={"default": LOCMEM, "sessions": config(cluster)}):
        keys = saved_sessions(3)
        dead = cluster.primaries[0]
        assert dead.process is not None
        dead.process.kill()
        dead.process.wait()
        dead.process = None
        # At first the other nodes still serve their slots; once they agree the node
        # failed (cluster-node-timeout), they answer CLUSTERDOWN for every slot.
        live = [Redis(port=server.port, socket_timeout=1) for server in cluster.primaries[1:]]
        wait_for(lambda: all(cluster_state(admin) == "fail" for admin in live), what="cluster_state:fail")
        answers_within_the_bound(keys, "a primary dead, no replica")
        cluster_module.close_all()  # a process that first uses the cluster now
        answers_within_the_bound(keys[:1], "a new client of that cluster")
        for server in cluster.primaries[1:]:
            assert server.process is not None
            server.process.kill()
            server.process.wait()
            server.process = None
        answers_within_the_bound(keys[:1], "every node gone")


@contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    """SIGSTOP: the kernel still accepts connections, nothing is answered."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_a_hung_primary_cannot_hold_an_operation_past_the_bound(cluster):
    """Without the deadline each attempt would wait SOCKET_TIMEOUT (2 s here) for a reply,
    and redis-py makes several; after the hang every session works again, no restart."""
    with override_settings(CACHES={"default": LOCMEM, "sessions": config(cluster, SOCKET_TIMEOUT=2)}):
        keys = saved_sessions(6)
        node = cluster.primaries[0]
        with hung(node):
            answers_within_the_bound(keys_on(node, 2), "a primary hung (SIGSTOP)")
        cluster.wait_healthy()
        wait_for(lambda: SessionStore(keys[0]).get("n") == 1, what="sessions served again")
        assert all(SessionStore(key)["n"] == 1 for key in keys)


def test_a_save_with_its_index_record_answers_within_one_bound(cluster):
    """With USER_SESSIONS, a new session's save in a fresh process learns the servers' facts
    (the index's limit), writes the user's index record, then the session: on a hung primary
    holding both buckets, all of it answers within one OPERATION_TIMEOUT (sync and async).
    Before, the facts were read outside the bound (5.0 s here: SOCKET_TIMEOUT)."""
    bound = 2.0  # long enough that two bounds (~3.4 s) cannot pass for one (~1.7 s) on a loaded machine
    options = {"SOCKET_TIMEOUT": 5, "OPERATION_TIMEOUT": bound, "USER_SESSIONS": True}
    with override_settings(CACHES={"default": LOCMEM, "sessions": config(cluster, **options)}):
        node = cluster.primaries[0]
        sessions = sessions_for("sessions")
        client = caches["sessions"].client.get_client()
        user = next(
            user
            for user in map(str, itertools.count())
            if client.get_node_from_key(IndexEntry.of(sessions, user).bucket).port == node.port
        )
        times = []
        for key, save in zip(keys_on(node, 2), (lambda s: s.save(), lambda s: asyncio.run(s.asave())), strict=True):
            session = SessionStore()
            session._get_new_session_key = lambda key=key: key  # type: ignore[method-assign]
            session.update({"_auth_user_id": user, "n": 1})
            cluster_module.close_all()  # a fresh process: nothing learnt of the servers yet
            server_facts.forget()
            with hung(node):
                started = time.monotonic()
                with pytest.raises(SessionStoreUnavailable):
                    save(session)
                times.append(time.monotonic() - started)
    print(f"\na save and its index record on a hung primary: {max(times):.2f} s at most")
    assert max(times) < bound + MARGIN * 0.7, times


def test_outside_a_session_operation_the_cluster_client_is_redis_pys(cluster):
    """The deadline changes nothing for the alias's cache calls and the sweeps: redis-py's
    own retries, and the configured socket timeouts, even on a connection a session
    operation used and cut short."""
    with override_settings(CACHES={"default": LOCMEM, "sessions": config(cluster, SOCKET_TIMEOUT=2)}):
        client = caches["sessions"].client.get_client()
        stock = RedisCluster.from_url(cluster.urls[0])  # what redis-py makes by itself
        assert client.retry.get_retries() == stock.retry.get_retries() > 0
        stock.close()
        with deadline.within(BOUND):
            assert client.retry.get_retries() == 0
        [key] = keys_on(cluster.primaries[0], 1)
        with deadline.within(BOUND):  # once the time is up, nothing is sent
            time.sleep(BOUND)
            with pytest.raises(SessionStoreUnavailable):
                SessionStore(key).load()
        with deadline.within(BOUND):  # before, the wait for a reply is cut to the time left
            assert SessionStore(key).load() == {}
        pool = client.get_redis_connection(
            client.get_node(host="127.0.0.1", port=cluster.primaries[0].port)
        ).connection_pool
        connection = pool.get_connection()
        try:  # the connection they used is whole again outside
            connection.send_command("PING")
            assert connection.read_response() in (b"PONG", "PONG")
            assert connection._sock.gettimeout() == 2
        finally:
            pool.release(connection)
        assert caches["sessions"].set("plain cache key", 1) and caches["sessions"].get("plain cache key") == 1


def test_operation_timeout_is_checked_and_refused_where_it_cannot_apply():
    for value in (0, 0.1, -1, "3", True, float("nan"), 7200):
        config = _config(13, OPERATION_TIMEOUT=value)
        with override_settings(CACHES={"default": LOCMEM, "sessions": config}), pytest.raises(ImproperlyConfigured):
            SessionStore().save()
    config = _config(13, OPERATION_TIMEOUT=2)
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}), pytest.raises(ImproperlyConfigured) as info:
        SessionStore().save()
    assert "OPERATION_TIMEOUT" in str(info.value) and "Redis Cluster only" in str(info.value)
