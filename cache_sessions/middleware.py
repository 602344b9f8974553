"""``SessionMiddleware``: Django's, plus an honest answer when Redis is unavailable.

Put ``"cache_sessions.middleware.SessionMiddleware"`` where
``"django.contrib.sessions.middleware.SessionMiddleware"`` was. Then a request
whose session the store could not load or save (``SessionStoreUnavailable``:
Redis down, restarting, read-only after a failover, out of memory) gets a
``503 Service Unavailable`` with ``Retry-After`` instead of a 500. With
``OPTIONS["DEGRADED_READS"] = True`` on the alias, a ``GET``/``HEAD``/``OPTIONS``
request goes on with an empty, read-only session instead (the user looks
logged out for that one page): it is never saved, the cookie is left as it
is, and the response is marked uncacheable, so the user's real session is
there again on the first request after Redis is back.

A session about to be saved at the end of a request (modified, or
``SESSION_SAVE_EVERY_REQUEST``) and not loaded yet is loaded first, on its
own: a store that fails that load gives the degraded page (or the 503), never
a save of what the failed load left. The engine refuses such writes too
(``backend.py``), whatever calls them.

Under ASGI it is natively async: Django's own middleware runs its
``process_response`` (and so the session's ``save()``) in a worker thread,
while this one loads and saves with ``aload()``/``asave()`` on
``redis.asyncio`` in the event loop, every save included (those of
``SESSION_SAVE_EVERY_REQUEST`` and of a due "last seen" record), so
Django's ``process_response`` is left with no I/O to do.

Keep it the only session middleware (system check ``cache_sessions.E006``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.template import TemplateDoesNotExist, loader
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from .backend import SessionStore
from .errors import SessionStoreUnavailable
from .storage import index

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionMiddleware(DjangoSessionMiddleware):
    # Both paths do the same steps at the end of a request: load the session if it is about
    # to be saved and nothing loaded it yet (so a store that is down gives the degraded page
    # or a 503 before anything is written), mark it for saving if its index record is due,
    # then save. The sync path leaves the save to Django's process_response; the async path
    # does every step with I/O natively first, so process_response has no I/O left to do.

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)  # no I/O: a store with a key, nothing loaded yet
        response: HttpResponse = await self.get_response(request)  # type: ignore[misc]
        session = request.session
        if isinstance(session, SessionStore) and not self._store_failed(session, response):
            try:
                if self._load_due(session):
                    await session._aget_session()  # type: ignore[attr-defined]  # Django's, not in its stubs
                self._refresh_index(session)
                if self._will_save(session, response):
                    await self._presave(session)
            except SessionStoreUnavailable as exc:
                return self.unavailable(request, exc)
        return self._respond(request, response)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and not self._store_failed(session, response):
            try:
                if self._load_due(session):
                    session._get_session()  # type: ignore[attr-defined]
            except SessionStoreUnavailable as exc:
                return self.unavailable(request, exc)
            self._refresh_index(session)
        return self._respond(request, response)

    @staticmethod
    def _store_failed(session: SessionStore, response: HttpResponse) -> bool:
        """The store failed the view (a 500): the answer is a 503, with no more I/O."""
        return session.unavailable is not None and response.status_code == 500

    @staticmethod
    def _load_due(session: SessionStore) -> bool:
        """Whether Django's process_response would load the session (to save it) if not done here."""
        saving = session.modified or settings.SESSION_SAVE_EVERY_REQUEST
        return bool(saving and session.session_key is not None and not hasattr(session, "_session_cache"))

    @staticmethod
    def _refresh_index(session: SessionStore) -> None:
        """USER_SESSIONS: a request that used a session whose "last seen" is older than
        USER_SESSION_SEEN_EVERY saves it (and so its index entry), even if it only read it."""
        if session.index_entry_due():
            session.modified = True

    @staticmethod
    def _will_save(session: SessionStore, response: HttpResponse) -> bool:
        """Whether Django's ``process_response`` is about to save the session."""
        if session.degraded or response.status_code >= 500:
            return False
        return bool((session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty())

    @staticmethod
    async def _presave(session: SessionStore) -> None:
        try:
            await session.asave()
        except UpdateError as exc:
            session.presaved = exc  # process_response's save() raises it, as Django expects
        else:
            session.presaved = True  # process_response's save() has nothing left to do

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            options = session._storage.options
            if request.method in READ_ONLY_METHODS:
                session.degraded_reads = options.degraded_reads
            if options.user_sessions and options.user_session_metadata:
                session.request_meta = index.request_meta(request)

    def _respond(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Django's process_response (the save, the cookie), or the answer for a store that failed."""
        session: Any = getattr(request, "session", None)
        failure = getattr(session, "unavailable", None)
        if failure is not None and response.status_code == 500:  # the view (or a middleware) hit it
            return self.unavailable(request, failure, response)
        if getattr(session, "degraded", False):
            patch_vary_headers(response, ("Cookie",))
            add_never_cache_headers(response)
            return response  # no save, no Set-Cookie: the real session is untouched
        try:
            return super().process_response(request, response)
        except SessionStoreUnavailable as exc:  # the save at the end of the request
            return self.unavailable(request, exc)

    def unavailable(
        self, request: HttpRequest, exc: SessionStoreUnavailable, response: HttpResponse | None = None
    ) -> HttpResponse:
        """A 503 with Retry-After (``503.html`` if a template exists; with DEBUG, the
        technical error page, as a 503)."""
        session: Any = getattr(request, "session", None)
        retry_after = session._storage.options.retry_after if isinstance(session, SessionStore) else 5
        if response is None or not settings.DEBUG:
            try:
                body: str = loader.render_to_string("503.html", {"retry_after": retry_after}, request)
                content_type = "text/html; charset=utf-8"
            except TemplateDoesNotExist:
                body = "The service is temporarily unavailable. Please try again in a moment.\n"
                content_type = "text/plain; charset=utf-8"
            response = HttpResponse(body, status=503, content_type=content_type)
        else:
            response.status_code = 503
            response.reason_phrase = "Service Unavailable"
        if retry_after:
            response["Retry-After"] = str(retry_after)
        add_never_cache_headers(response)
        return response
