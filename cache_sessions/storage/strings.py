"""String mode: one Redis key per session, expired by Redis itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors, keys
from . import lua
from .base import Storage
from .calls import Call, answer, evalsha


class StringStorage(Storage):
    """One Redis string per session, named ``<KEY_PREFIX>:s<VERSION>:<KEY_GENERATOR(key)>``."""

    def redis_key(self, session_key: str) -> bytes:
        return self.prefix + self.name(self.options.key_generator or keys.text, session_key)

    def locate(self, session_key: str) -> tuple[bytes, ...]:
        return (self.redis_key(session_key),)

    def describe(self, session_key: str) -> dict[str, Any]:
        """Where and how a session is stored (for humans: debug pages, shells)."""
        key = self.redis_key(session_key)
        redis = self.redis_for(key)
        with errors.translated():
            return {"mode": "string", "key": key, "ttl": redis.ttl(key), "bytes": redis.strlen(key)}

    def load_call(self, session_key: str) -> Call[dict[str, Any] | None]:
        return Call(("GET", self.redis_key(session_key)), self.decode)

    def exists_call(self, session_key: str) -> Call[bool]:
        return self.alive_place_call(self.place(session_key))

    def create_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        """``SET NX GET``: stored, or the key already holds exactly this value (this very
        create, retried after its reply was lost): both succeed; anything else is taken."""
        if ttl <= 0:
            return answer(True)  # expired on arrival: nothing to store
        key, value = self.redis_key(session_key), self.codec.encode(session)
        script = evalsha(lua.CREATE_STRING, [key], [value, ttl], bool)
        server = self.topology.facts_for(key)  # no I/O: the cluster's is known by its startup nodes
        if not server.set_nx_get:
            return script

        def before_redis_7() -> Call[bool]:
            server.set_nx_get = False
            return script

        command = ("SET", key, value, "EX", ttl, "NX", "GET")
        return Call(command, lambda old: old is None or old == value, options={"get": True}, fallback=before_redis_7)

    def update_call(self, session_key: str, session: Mapping[str, Any], ttl: int) -> Call[bool]:
        """``SET XX``: a session deleted meanwhile stays deleted. Repeating it is harmless."""
        key = self.redis_key(session_key)
        if ttl <= 0:
            return Call(("DEL", key), lambda _: True)
        return Call(("SET", key, self.codec.encode(session), "EX", ttl, "XX"), bool)

    def place(self, session_key: str) -> tuple[bytes, ...]:
        return (self.redis_key(session_key),)

    def alive_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        return Call(("EXISTS", place[0]), bool)

    def delete_place_call(self, place: tuple[bytes, ...]) -> Call[bool]:
        return Call(("DEL", place[0]), bool)
