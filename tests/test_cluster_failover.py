"""Failover on a real cluster (3 primaries, a replica each) while sessions are saved.

(a) ``CLUSTER FAILOVER`` on a replica (a planned switch): no save fails, none is
lost, and the scripts, which Redis does not replicate, are loaded on the
promoted node when it answers NOSCRIPT. (b) SIGKILL of a primary: whatever
redis-py does inside, every save of its sessions answers within
``OPERATION_TIMEOUT`` (plus a margin for a loaded machine): it waits for the
promotion (``cluster-node-timeout 1000``) and succeeds, or fails with
``SessionStoreUnavailable`` (a ``ConnectionInterrupted``); the same process
then carries on; nothing acknowledged before the kill is lost, except what the
primary acknowledged in its last instant and its replica had not yet received
(replication is asynchronous; see README, Redis Cluster). A cluster that stays
down: ``test_cluster_down.py``.

Each test prints its figures (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis import Redis

from cache_sessions.backend import SessionStore
from cache_sessions.errors import SessionStoreUnavailable
from cache_sessions.storage import lua
from cache_sessions.testing import RedisServer
from cache_sessions.topology.cluster import DEFAULT_OPERATION_TIMEOUT
from tests.support.clusters import Cluster, wait_for
from tests.support.servers import field_ttls_here

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
SESSIONS = 240
WRITERS = 4
MARGIN = 1.0  # seconds an operation may take beyond OPERATION_TIMEOUT on a loaded machine (scheduling)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(primaries=3, replicas=1).start()
    yield cluster
    cluster.stop()


@contextmanager
def sessions_on(cluster: Cluster, use_hash: bool, **options: Any) -> Iterator[Any]:
    """The ``sessions`` alias on ``cluster``; yields its raw (cluster) client."""
    config = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": [server.url for server in cluster.current_primaries()],
        "OPTIONS": {
            "CLIENT_CLASS": "cache_sessions.cluster.ClusterClient",
            "USE_HASH": use_hash,
            "SOCKET_TIMEOUT": 1,
            "SOCKET_CONNECT_TIMEOUT": 1,
            **options,
        },
    }
    cluster.wait_healthy()
    with override_settings(CACHES={"default": LOCMEM, "sessions": config}):
        redis = caches["sessions"].client.get_client()
        yield redis
        redis.flushall()


@dataclass
class Load:
    """Writers saving every session again and again, each save a +1; what was acknowledged."""

    keys: list[str]
    acked: dict[str, tuple[int, float]] = field(default_factory=dict)  # key: (value, monotonic time of the ack)
    failures: list[tuple[float, float, BaseException]] = field(default_factory=list)  # (start, end, error)
    slowest: float = 0.0  # the longest save that succeeded, in seconds
    slow: list[float] = field(default_factory=list)  # the start of each save that took longer than a second
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, keys: list[str]) -> None:
        while not self.stop.is_set():
            for key in keys:
                if self.stop.is_set():
                    return
                started = time.monotonic()
                try:
                    session = SessionStore(key)
                    session["n"] = value = session["n"] + 1
                    session.save()
                except Exception as exc:  # counted and judged by the test
                    self.failures.append((started, time.monotonic(), exc))
                    continue
                with self.lock:
                    self.acked[key] = max(self.acked[key], (value, time.monotonic()))
                    self.slowest = max(self.slowest, time.monotonic() - started)
                    if time.monotonic() - started > 1.0:
                        self.slow.append(started)

    def run(self, during: Any, after: float) -> None:
        threads = [threading.Thread(target=self.write, args=(self.keys[n::WRITERS],)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.3)
            during()
            time.sleep(after)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()

    def lost(self) -> list[str]:
        """Sessions that load back older than their last acknowledged save."""
        return [key for key in self.keys if SessionStore(key).get("n", -1) < self.acked[key][0]]


def start_load(redis: Any) -> Load:
    keys = []
    for _ in range(SESSIONS):
        session = SessionStore()
        session["n"] = 0
        session.save()
        keys.append(session.session_key)
    for node in redis.get_primaries():  # every session so far is on a replica too
        assert redis.get_redis_connection(node).wait(1, 2000) == 1
    return Load(keys, {key: (0, 0.0) for key in keys})


def replica_of(cluster: Cluster, primary: RedisServer) -> RedisServer:
    for server in cluster.current_replicas():
        admin = cluster.admin(server)
        try:
            if admin.info("replication").get("master_port") == primary.port:
                return server
        finally:
            admin.close()
    raise LookupError(f"no replica of {primary}")


def is_primary(server: RedisServer) -> bool:
    admin = Redis(port=server.port, socket_timeout=1)
    try:
        return admin.info("replication")["role"] == "master"
    finally:
        admin.close()


@pytest.mark.parametrize("use_hash", [True, False], ids=["hash", "string"])
def test_a_planned_failover_fails_no_save_and_loses_none(cluster, use_hash):
    with sessions_on(cluster, use_hash) as redis:
        planned_failover(cluster, redis, use_hash)


def planned_failover(cluster: Cluster, redis: Any, use_hash: bool) -> None:
    load = start_load(redis)
    replica = replica_of(cluster, cluster.current_primaries()[0])
    admin = cluster.admin(replica)
    admin.script_flush()  # a replica that joined after the scripts were loaded: it has none
    switched: list[float] = []

    def failover() -> None:
        started = time.monotonic()
        admin.execute_command("CLUSTER FAILOVER")
        wait_for(lambda: is_primary(replica), what="replica promoted")
        switched.append(time.monotonic() - started)

    load.run(failover, after=0.7)
    saves = sum(value for value, _ in load.acked.values())
    mode = "hash" if use_hash else "string"
    print(f"\nCLUSTER FAILOVER ({mode}): {saves} saves, switched in {switched[0]:.2f} s, slowest {load.slowest:.2f} s")
    assert [repr(exc) for _, _, exc in load.failures] == []
    assert load.lost() == []
    if use_hash and not field_ttls_here():  # the promoted node answered NOSCRIPT and got the scripts it runs
        assert admin.script_exists(lua.WRITE.sha) == [True]
    admin.close()


@pytest.mark.parametrize("bound", [1.0, None], ids=["OPERATION_TIMEOUT=1", "default"])
def test_sigkill_of_a_primary_answers_every_save_within_the_bound_and_loses_none(cluster, bound):
    """Whatever redis-py does inside (some versions fail fast and retry little, others retry
    on their own for seconds), each save either succeeds or raises SessionStoreUnavailable, within
    OPERATION_TIMEOUT; with 1 s (shorter than the promotion) some fail, with the default
    most wait for the promotion and succeed."""
    options = {} if bound is None else {"OPERATION_TIMEOUT": bound}
    limit = (bound or DEFAULT_OPERATION_TIMEOUT) + MARGIN
    with sessions_on(cluster, use_hash=True, **options) as redis:
        sigkill(cluster, redis, limit)


def sigkill(cluster: Cluster, redis: Any, limit: float) -> None:
    load = start_load(redis)
    victim = cluster.current_primaries()[0]
    replica = replica_of(cluster, victim)
    killed: list[float] = []

    def kill() -> None:
        assert victim.process is not None
        killed.append(time.monotonic())
        victim.process.kill()  # no shutdown, no handover
        victim.process.wait()
        victim.process = None
        wait_for(lambda: is_primary(replica), what="replica promoted")
        killed.append(time.monotonic())

    try:
        load.run(kill, after=1.0)
    finally:
        victim.start()  # it comes back as a replica of its replica (its nodes.conf says so)
        cluster.wait_healthy()
    failures = load.failures
    longest = max((end - start for start, end, _ in failures), default=0.0)
    lost = load.lost()
    saves = sum(value for value, _ in load.acked.values())
    print(
        f"\nSIGKILL of a primary: promoted after {killed[1] - killed[0]:.2f} s; {saves} saves acknowledged, "
        f"{len(failures)} failed (SessionStoreUnavailable), longest failing save {longest:.2f} s, longest "
        f"successful save {load.slowest:.2f} s, {len(load.slow)} saves waited over 1 s; {len(lost)} "
        f"acknowledged saves lost"
    )
    assert all(isinstance(exc, SessionStoreUnavailable) for _, _, exc in failures), failures[:3]
    assert load.slowest < limit and longest < limit
    assert load.slow or failures, "no save reached the killed primary"
    # Lost at most: what the victim acknowledged in its last instant, before its replica had it.
    assert all(load.acked[key][1] > killed[0] - 1.0 for key in lost), lost
    for key in load.keys:  # the same process, no restart: every session saves again
        session = SessionStore(key)
        session["after"] = True
        session.save()
    assert all(SessionStore(key)["after"] for key in load.keys)
