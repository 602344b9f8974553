"""What the sentinels say about a service, read once for the sync and the asyncio side.

Each sentinel is asked, in one pipeline it runs back to back, for the service's state
(its config epoch and flags: ``SENTINEL MASTER``) and for the address that goes with
that epoch (``SENTINEL GET-MASTER-ADDR-BY-NAME``); ``primary`` then believes the newest
configuration (``sentinel.NewestSentinel`` says why). Sending is the caller's:
``sentinel.NewestSentinel`` on redis-py, ``async_sentinel`` on ``redis.asyncio``.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError, TimeoutError
from redis.sentinel import MasterNotFoundError

# What a sentinel answered: the two replies of ``queued``'s pipeline, or why it did not.
Answer = list[Any] | ConnectionError | TimeoutError


def queued(pipe: Any, service_name: str) -> Any:
    """``pipe`` (sync or asyncio, no transaction) with the two questions about ``service_name``."""
    pipe.sentinel_master(service_name)
    pipe.sentinel_get_master_addr_by_name(service_name)
    return pipe


def primary(manager: Any, service_name: str, answers: list[tuple[Any, Answer]]) -> tuple[str, int]:
    """The primary that the newest configuration among the ``(sentinel, answer)`` pairs names
    (``manager``: the redis-py ``Sentinel``, which judges a state and may force the IP)."""
    found: list[tuple[int, tuple[str, int]]] = []
    failures = []
    for sentinel, answer in answers:
        try:
            state, address = _read(answer)
        except (ConnectionError, TimeoutError) as exc:
            failures.append(f"{sentinel}: {exc!r}")
            continue
        if state and address and manager.check_master_state(state, service_name):
            forced = manager._force_master_ip
            found.append((int(state.get("config-epoch") or 0), (forced or address[0], address[1])))
    if not found:
        raise MasterNotFoundError(f"No master found for {service_name!r}" + "".join(f"; {f}" for f in failures))
    return newest(found)


def _read(answer: Answer) -> tuple[dict[str, Any] | None, tuple[str, int] | None]:
    """``(state, address)`` from one sentinel's answer; ``None``s if it does not know the service."""
    if isinstance(answer, Exception):
        raise answer
    state, address = answer
    for reply in (state, address):
        if isinstance(reply, (ConnectionError, TimeoutError)):
            raise reply
    if not isinstance(state, dict) or not address or isinstance(address, Exception):
        return None, None  # "No such master with that name"
    host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
    return state, (host, int(address[1]))


def newest(answers: list[tuple[int, tuple[str, int]]]) -> tuple[str, int]:
    """The address of the highest epoch among ``(epoch, address)`` answers; on one epoch
    with several addresses, the one given most often (then the first given)."""
    top = max(epoch for epoch, _ in answers)
    addresses = [address for epoch, address in answers if epoch == top]
    return max(addresses, key=lambda address: (addresses.count(address), -addresses.index(address)))
