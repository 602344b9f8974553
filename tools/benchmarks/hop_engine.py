"""cache_sessions as it was before native async, for the ASGI benchmark: each async
method of the session runs its sync twin in a worker thread (``sync_to_async``)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from cache_sessions.backend import SessionStore as NativeSessionStore


class SessionStore(NativeSessionStore):
    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def aexists(self, session_key: str) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def acreate(self) -> None:
        await sync_to_async(self.create)()

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)
