"""``PartitionedClient``: one alias over several independent Redis servers, by weight.

Each key lives on the server that weighted rendezvous hashing picks for it
(``topology/hrw.py``, ``topology/weights.py``): sessions by their bucket in hash mode (so a
bucket and its overflow keys stay together) or by their key in string mode,
and the alias's ordinary cache keys the same way, so ``cache.get``,
``cache.set``, ``incr``, ``ttl``, locks and the set and sorted-set helpers
all work. Each server has its own connection pool (django-redis keeps one
per URL and process).

Across servers:

- ``get_many``, ``set_many``, ``delete_many``: one round trip per server
  involved; ``incr_version`` moves the value to whichever server holds the
  new key;
- ``clear``, ``delete_pattern``, ``keys``, ``iter_keys``: every server;
- commands on several keys at once (``sinter``, ``sunionstore``, ``smove``...)
  work when the keys live on one server, which a shared ``{hash tag}``
  guarantees (``{cart:7}:a`` and ``{cart:7}:b``), and raise
  ``CrossServerKeys`` otherwise;
- ``get_client()`` needs the key: ``get_client(key=...)`` is the client of
  the server holding that Redis key; ``servers()`` gives them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from functools import partial, wraps
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.client import DefaultClient

from .client import SessionClient
from .topology.partitioned import PartitionedTopology
from .topology.weights import partition_of

if TYPE_CHECKING:
    from redis import Redis


class CrossServerKeys(ValueError):
    """A command on several keys that live on different servers of a partitioned alias."""


# Commands on one key: routed by it (the key is their first argument).
# fmt: off
ONE_KEY = (
    "add", "get", "set", "delete", "has_key", "touch", "ttl", "pttl", "persist", "expire", "pexpire", "expire_at",
    "pexpire_at", "lock", "incr", "decr", "hset", "hdel", "hlen", "hkeys", "hexists", "sadd", "scard", "smembers",
    "spop", "srandmember", "srem", "sscan", "sscan_iter", "sismember", "smismember", "zadd", "zcard", "zcount",
    "zincrby", "zpopmax", "zpopmin", "zrange", "zrangebyscore", "zrank", "zrem", "zremrangebyscore", "zrevrange",
    "zrevrangebyscore", "zscore",
)
# fmt: on


def _made_keys(client: Any, arguments: dict[str, Any], name: str) -> list[Any]:
    """The Redis keys a command on several keys touches (django-redis's own key versions)."""
    make = client.make_key
    version = arguments.get("version")
    if name == "smove":
        return [make(arguments["source"], version=version), make(arguments["destination"])]
    if name == "sdiffstore":
        keys = [make(key, version=arguments.get("version_keys")) for key in arguments.get("keys", ())]
        return [make(arguments["dest"], version=arguments.get("version_dest")), *keys]
    first = arguments.get("dest", arguments.get("destination"))
    keys = [make(key, version=version) for key in arguments.get("keys", ())]
    return ([make(first, version=version)] if first is not None else []) + keys


# Commands on several keys: only when they all live on one server.
SEVERAL_KEYS = ("sdiff", "sinter", "sunion", "sdiffstore", "sinterstore", "sunionstore", "smove")


def _routed(name: str, keys_of: Callable[[Any, dict[str, Any]], list[Any]]) -> Callable[..., Any]:
    """DefaultClient's ``name``, on the server holding its keys unless a ``client`` is given."""
    base = getattr(DefaultClient, name)
    signature = inspect.signature(base)

    @wraps(base)
    def method(self: PartitionedClient, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        if bound.arguments.get("client") is None:
            bound.arguments["client"] = self.server_of(name, keys_of(self, bound.arguments))
        return base(*bound.args, **bound.kwargs)

    return method


def _one_key(client: Any, arguments: dict[str, Any]) -> list[Any]:
    return [client.make_key(arguments["key"], version=arguments.get("version"), prefix=arguments.get("prefix"))]


class PartitionedClient(SessionClient):
    """LOCATION: the servers' URLs; OPTIONS["WEIGHTS"]: a weight each (default 1)."""

    topology_class = PartitionedTopology

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        options = params.get("OPTIONS") or {}
        self.partition = partition_of(server, options.get("WEIGHTS"))
        super().__init__(list(self.partition.locations), params, backend)

    # Where keys live --------------------------------------------------------

    def shard(self, index: int) -> Redis:
        """The client of server ``index`` (made on first use, like DefaultClient's)."""
        client = self._clients[index]
        if client is None:
            client = self._clients[index] = self.connect(index)
        return client  # type: ignore[no-any-return]

    def server_for(self, name: bytes | str) -> Redis:
        """The client of the server holding the Redis key ``name``."""
        return self.shard(self.partition.index_for(name.encode() if isinstance(name, str) else name))

    def servers(self) -> list[Redis]:
        return [self.shard(index) for index in range(len(self._server))]

    def by_server(self, names: Iterable[Any]) -> list[tuple[Redis, list[Any]]]:
        """``names`` grouped by the server holding them, in server order."""
        groups: dict[int, list[Any]] = {}
        for name in names:
            groups.setdefault(self.partition.index_for(_bytes(name)), []).append(name)
        return [(self.shard(index), groups[index]) for index in sorted(groups)]

    def server_of(self, command: str, keys: list[Any]) -> Redis:
        servers = {self.partition.index_for(_bytes(key)) for key in keys}
        if len(servers) != 1:
            raise CrossServerKeys(
                f"{command} on keys held by different servers of a partitioned cache; give them a shared "
                f"{{hash tag}} (e.g. '{{cart:7}}:a', '{{cart:7}}:b') to keep them on one server."
            )
        return self.shard(servers.pop())

    def get_client(self, write: bool = True, tried: list[int] | None = None, *, key: Any = None) -> Redis:
        """The client of the server holding the Redis key ``key`` (required: there is one per server)."""
        if key is None:
            raise TypeError(
                "A partitioned cache has a client per server: get_client(key=<Redis key>) for the server "
                "of a key, servers() for all of them."
            )
        return self.server_for(_bytes(key))

    def get_client_with_index(self, write: bool = True, tried: list[int] | None = None) -> tuple[Redis, int]:
        return self.get_client(write, tried), 0  # raises: DefaultClient.set's retry loop must not pick a server

    # Several keys at once: a round trip per server involved -----------------

    def get_many(self, keys: Iterable[Any], version: int | None = None, client: Redis | None = None) -> dict[Any, Any]:
        found: dict[Any, Any] = {}
        for redis, group in self._grouped(keys, version, client):
            found.update(super().get_many(group, version=version, client=redis))
        return found

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, client: Any = None
    ) -> None:
        for redis, group in self._grouped(data, version, client):
            super().set_many({key: data[key] for key in group}, timeout, version=version, client=redis)

    def delete_many(self, keys: Iterable[Any], version: int | None = None, client: Redis | None = None) -> int:
        deleted = 0
        for redis, group in self._grouped(keys, version, client):
            deleted += super().delete_many(group, version=version, client=redis)
        return deleted

    def _grouped(self, keys: Iterable[Any], version: int | None, client: Redis | None) -> list[tuple[Redis, list[Any]]]:
        """``keys`` grouped by the server holding them (all on ``client`` when one is given)."""
        if client is not None:
            return [(client, list(keys))]
        made = {self.make_key(key, version=version): key for key in keys}
        return [(redis, [made[key] for key in group]) for redis, group in self.by_server(made)]

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None, client: Redis | None = None) -> int:
        version = self._backend.version if version is None else version
        old, new = self.make_key(key, version=version), self.make_key(key, version=version + delta)
        source = client or self.server_for(old)
        if client is not None or source is self.server_for(new):
            return super().incr_version(key, delta, version, client=source)  # type: ignore[no-any-return]
        value = self.get(old, version=version)  # the new key lives on another server: copy, then delete
        if value is None:
            raise ValueError(f"Key '{key!r}' not found")
        self.set(new, value, timeout=self.ttl(old, version=version))
        self.delete(old)
        return version + delta

    # Every server ---------------------------------------------------------------

    def _every(self, client: Redis | None) -> list[Redis]:
        return [client] if client is not None else self.servers()

    def clear(self, client: Redis | None = None) -> None:
        for redis in self._every(client):
            super().clear(client=redis)

    def delete_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None, client: Any = None, **kwargs: Any
    ) -> int:
        deleted = 0
        for redis in self._every(client):
            deleted += super().delete_pattern(pattern, version, prefix, client=redis, **kwargs)
        return deleted

    def iter_keys(
        self, search: str, itersize: int | None = None, client: Redis | None = None, version: int | None = None
    ) -> Iterator[Any]:
        for redis in self._every(client):
            yield from super().iter_keys(search, itersize, client=redis, version=version)

    def keys(self, search: str, version: int | None = None, client: Redis | None = None) -> list[Any]:
        found: list[Any] = []
        for redis in self._every(client):
            found += super().keys(search, version=version, client=redis)
        return found


for _name in ONE_KEY:
    if hasattr(DefaultClient, _name):
        setattr(PartitionedClient, _name, _routed(_name, _one_key))
for _name in SEVERAL_KEYS:
    if hasattr(DefaultClient, _name):
        setattr(PartitionedClient, _name, _routed(_name, partial(_made_keys, name=_name)))


def _bytes(name: Any) -> bytes:
    return name if isinstance(name, bytes) else str(name).encode()
