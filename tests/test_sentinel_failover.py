"""Real failovers of a 1 primary + 2 replicas + 3 sentinels group (``tests/support/sentinels.py``)
during save loops, both modes at once: nothing acknowledged is lost, whichever sentinel
leads the failover.

Each round takes seconds. The tests leave the group serving; each prints its figures
(``pytest -s``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis import Redis

from cache_sessions.sentinel import NewestSentinel
from cache_sessions.topology import follower as followers
from tests.support import sentinels
from tests.support.failover import SaveLoop
from tests.support.fault_servers import crash, wait_for

pytestmark = pytest.mark.django_db(databases=[])

LOCMEM, STOCK, alias, direct = sentinels.LOCMEM, sentinels.STOCK, sentinels.alias, sentinels.direct
DBS = {"loop-string": 3, "loop-hash": 4, "loop-stock-string": 5, "loop-stock-hash": 6}


@pytest.fixture(scope="module")
def group() -> sentinels.SentinelGroup:
    return sentinels.group()


def caches_for(group: sentinels.SentinelGroup, *loops: str) -> dict[str, Any]:
    """The ``loop-*`` aliases (stock ones with django-redis's Sentinel setup), and for each a
    ``check-<port>-<loop>`` alias on every data node, to read what that node holds."""
    configs: dict[str, Any] = {"default": LOCMEM}
    for name in loops:
        use_hash, stock = name.endswith("hash"), "stock" in name
        configs[name] = alias(group, DBS[name], use_hash, **(STOCK if stock else {}))
        for server in group.data:
            configs[f"check-{server.port}-{name}"] = direct(server, DBS[name], use_hash)
    return configs


def run_loops(configs: dict[str, Any], event: Any, settle: float) -> list[SaveLoop]:
    """Save loops on the ``loop-*`` aliases around ``event()``; they stop ``settle``
    seconds after it returns."""
    loops = [SaveLoop(name, sessions=100) for name in configs if name.startswith("loop-")]
    for loop in loops:
        loop.prepare()
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.3)
        event()
    finally:
        time.sleep(settle)
        for loop in loops:
            loop.finish()
    return loops


def flush(group: sentinels.SentinelGroup) -> None:
    for server in group.data:
        if server.process is not None and group.role(server) == "master":
            for db in DBS.values():
                Redis(port=server.port, db=db).flushdb()


def test_primary_killed_errors_for_a_bounded_time_then_saves_resume(group):
    group.ready()
    old = group.primary()
    configs = caches_for(group, "loop-string", "loop-hash")
    with override_settings(CACHES=configs):

        def kill() -> None:
            crash(old)
            wait_for(lambda: group.primary() is not old, timeout=20, what="a replica promoted")
            wait_for(lambda: group.role(group.primary()) == "master", timeout=20, what="the promotion")

        try:
            loops = run_loops(configs, kill, settle=1.5)
        finally:
            new = group.primary()
            sentinels.restart_as_replica(old, new)
        for loop in loops:
            check = f"check-{new.port}-{loop.alias}"
            print(f"\nSIGKILL of the primary: {loop.summary(check)}")
            assert not loop.lost_seen and not loop.lost_at_the_end(check)
            # Errors until the sentinels agree the primary is down (1 s here) and pick a replica
            # (measured: 0.9-2.1 s), then requests wait for the promotion; a slow election adds seconds.
            assert loop.errors > 0 and loop.error_window() < 8.0
            assert loop.longest_gap < 10.0 and loop.saves > 200  # and saves went on without a restart
    flush(group)


class Discoveries:
    """What primary discovery finds, over and over in a thread while a failover runs, and
    whether a sentinel had switched (announced ``+switch-master``) when it asked."""

    def __init__(self, group: sentinels.SentinelGroup, old: int) -> None:
        self.manager = NewestSentinel(group.addresses, sentinel_kwargs={"socket_timeout": 1})
        self.group, self.old = group, old
        self.found: list[tuple[bool, int]] = []  # (a sentinel had switched, the port found)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            switched = any(self._switched(index) for index in range(len(self.group.sentinels)))
            self.found.append((switched, self.manager.discover_master(sentinels.SERVICE)[1]))

    def _switched(self, index: int) -> bool:
        return bool(self.group.sentinel(index).sentinel_master(sentinels.SERVICE)["port"] != self.old)

    def __enter__(self) -> Discoveries:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def old_after_a_switch(self) -> int:
        """How many times discovery named the old primary after a sentinel had announced the new one."""
        return sum(1 for switched, port in self.found if switched and port == self.old)


@pytest.mark.parametrize("leader", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_planned_failover_loses_no_acknowledged_save_whichever_sentinel_leads(group, leader):
    """SENTINEL FAILOVER sent to one sentinel of SENTINELS during save loops. With two
    replicas the leader spends seconds reconfiguring the second one after the promotion;
    the others announce the switch before it does. Ours loses nothing (it pauses while the
    replica is promoted, then writes to it, and its discovery never sends it back);
    django-redis's stock Sentinel client, in the same run, keeps writing to the old primary,
    whose writes the failover discards."""
    group.ready()
    old = group.primary()
    configs = caches_for(group, *DBS)
    with override_settings(CACHES=configs):

        def failover() -> None:
            group.sentinel(leader).execute_command("SENTINEL", "FAILOVER", sentinels.SERVICE)
            wait_for(lambda: group.failed_over(old), timeout=30, what="the failover's end")

        with Discoveries(group, old.port) as discoveries:
            loops = run_loops(configs, failover, settle=1.0)
        new = group.primary()
        assert discoveries.found[-1] == (True, new.port) and discoveries.old_after_a_switch() == 0
        for loop in loops:
            print(f"\nSENTINEL FAILOVER to sentinel {leader}: {loop.summary(f'check-{new.port}-{loop.alias}')}")
        ours, stock = loops[:2], loops[2:]
        for loop in ours:
            assert not loop.lost_seen and not loop.lost_at_the_end(f"check-{new.port}-{loop.alias}")
            assert loop.errors == 0 and loop.longest_gap < followers.PAUSE_SECONDS + 1.0
        for loop in stock:  # the loss the test must be able to see
            assert loop.lost_at_the_end(f"check-{new.port}-{loop.alias}")
        for loop in stock:  # still on the old primary, demoted below: let the next test's find the new one
            caches[loop.alias].client.get_client().connection_pool.disconnect()
    # Sentinel demotes the old primary ~10 s after the switch; doing it now saves the next test the wait.
    sentinels.follow(old, new)
    flush(group)
