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

Under ASGI it is natively async: Django's own middleware runs its
``process_response`` (and so the session's ``save()``) in a worker thread,
while this one saves with ``asave()`` on ``redis.asyncio`` in the event loop.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.template import TemplateDoesNotExist, loader
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from . import user_index
from .backend import SessionStore
from .errors import SessionStoreUnavailable

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionMiddleware(DjangoSessionMiddleware):
    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)  # no I/O: a store with a key, nothing loaded yet
        response: HttpResponse = await self.get_response(request)  # type: ignore[misc]
        session = request.session
        if isinstance(session, SessionStore) and self._will_save(request, response):
            try:
                await session.asave()
            except SessionStoreUnavailable as exc:
                return self.unavailable(request, exc)
            except UpdateError as exc:
                session.presaved = exc  # process_response's save() raises it, as Django expects
            else:
                session.presaved = True  # process_response's save() has nothing left to do
        elif isinstance(session, SessionStore) and settings.SESSION_SAVE_EVERY_REQUEST and session.session_key:
            await session._aget_session()  # type: ignore[attr-defined]  # loaded here, not by a blocking call
        return self.process_response(request, response)

    @staticmethod
    def _will_save(request: HttpRequest, response: HttpResponse) -> bool:
        """Whether Django's ``process_response`` is about to save the session."""
        session: Any = request.session
        if session.degraded or response.status_code >= 500:
            return False
        return bool((session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty())

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            options = session._storage.options
            if request.method in READ_ONLY_METHODS:
                session.degraded_reads = options.degraded_reads
            if options.user_sessions and options.user_session_metadata:
                session.request_meta = user_index.request_meta(request)

    @staticmethod
    def _refresh_index(session: Any) -> None:
        """USER_SESSIONS: a request that used a session whose "last seen" is older than
        USER_SESSION_SEEN_EVERY saves it (and so its index entry), even if it only read it."""
        if isinstance(session, SessionStore) and session.index_entry_due():
            session.modified = True

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session: Any = getattr(request, "session", None)
        if not getattr(session, "presaved", False):  # (the async path has refreshed and saved already)
            self._refresh_index(session)
        if getattr(session, "degraded", False):
            patch_vary_headers(response, ("Cookie",))
            add_never_cache_headers(response)
            return response  # no save, no Set-Cookie: the real session is untouched
        try:
            response = super().process_response(request, response)
        except SessionStoreUnavailable as exc:  # the save at the end of the request
            return self.unavailable(request, exc)
        failure = getattr(session, "unavailable", None)
        if failure is not None and response.status_code == 500:  # the view (or a middleware) hit it
            return self.unavailable(request, failure, response)
        return response

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
