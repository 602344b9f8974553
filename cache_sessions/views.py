"""The signed-in user's sessions: a list, and POST-only actions that end one of them,
all the others, or all (which logs the requester out too). ``urls.py`` serves the
sync views, ``urls_async.py`` the async twins (``Async...``), for ASGI sites.

Every view needs a signed-in user (else the login page, as ``LoginRequiredMixin``
does), ``USER_SESSIONS`` on the session alias (else ``ImproperlyConfigured``), and
only ever touches that user's own sessions: an id that is not one of them is a 404
and ends nothing. The actions are CSRF-protected even without the CSRF middleware.

Subclass to change ``template_name``, ``base_template`` (default: the setting
``CACHE_SESSIONS_BASE_TEMPLATE``, else ``"cache_sessions/base.html"``), ``alias``
(the cache alias; default ``SESSION_CACHE_ALIAS``), ``success_url`` (after an
action; default the list) or ``logout_url`` (after ending the current session;
default ``LOGOUT_REDIRECT_URL``, else ``"/"``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import alogout, logout
from django.contrib.auth.mixins import AccessMixin, LoginRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView, View
from django.views.generic.base import TemplateResponseMixin

from . import users
from .engine import display
from .signals import SELF, revoking
from .storage.index import session_id

if TYPE_CHECKING:
    from .users import UserSession

DEFAULT_BASE_TEMPLATE = "cache_sessions/base.html"


class SessionsMixin:
    """What every session view shares: the settings above, messages, where to go next."""

    request: HttpRequest
    alias: str | None = None
    base_template: str | None = None
    success_url: str | None = None
    logout_url: str | None = None
    user: Any = None  # the signed-in user (set by dispatch)

    def get_base_template(self) -> str:
        return self.base_template or getattr(settings, "CACHE_SESSIONS_BASE_TEMPLATE", None) or DEFAULT_BASE_TEMPLATE

    def get_success_url(self) -> str:
        if self.success_url:
            return self.success_url
        match = self.request.resolver_match
        namespace = match.namespace if match else None  # the include()'s instance namespace
        return reverse("cache_sessions:session_list", current_app=namespace)

    def get_logout_url(self) -> str:
        return resolve_url(self.logout_url or settings.LOGOUT_REDIRECT_URL or "/")

    def notify(self, level: int, message: str) -> None:
        """A message for the next page, through django.contrib.messages when the site has it."""
        if apps.is_installed("django.contrib.messages"):
            messages.add_message(self.request, level, message, fail_silently=True)

    def is_current(self, shown_id: str) -> bool:
        key = self.request.session.session_key
        return key is not None and session_id(key).hex() == shown_id

    def page_context(self, listed: list[UserSession]) -> dict[str, Any]:
        shown = display.shown(listed)
        return {
            "sessions": shown,
            "other_sessions": [session for session in shown if not session.current],
            "metadata": users.metadata_on(self.alias),
            "base_template": self.get_base_template(),
        }

    # What each action answers, once its sessions are ended (and the requester logged out).

    def ended_one(self, current: bool) -> HttpResponse:
        if current:
            self.notify(messages.SUCCESS, gettext("This session was ended: you are logged out."))
            return HttpResponseRedirect(self.get_logout_url())
        self.notify(messages.SUCCESS, gettext("The session was ended: that device is logged out."))
        return HttpResponseRedirect(self.get_success_url())

    def ended_others(self, count: int) -> HttpResponse:
        if count:
            text = ngettext("%(count)d other session was ended.", "%(count)d other sessions were ended.", count) % {
                "count": count
            }
            self.notify(messages.SUCCESS, text)
        else:
            self.notify(messages.INFO, gettext("There were no other sessions to end."))
        return HttpResponseRedirect(self.get_success_url())

    def ended_all(self, count: int) -> HttpResponse:
        text = ngettext(
            "You are logged out everywhere: %(count)d session was ended.",
            "You are logged out everywhere: %(count)d sessions were ended.",
            count,
        ) % {"count": count}
        self.notify(messages.SUCCESS, text)
        return HttpResponseRedirect(self.get_logout_url())


def _not_theirs() -> Http404:
    return Http404("No such session among yours.")


# Sync views ------------------------------------------------------------------


# Pages about sessions are never cached; the actions are CSRF-protected even without the middleware.
PROTECTED = method_decorator([never_cache, csrf_protect], name="dispatch")


@PROTECTED
class SessionsView(LoginRequiredMixin, SessionsMixin, View):
    """A sync session view: a signed-in user, and sessions per user on."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        users.require_user_sessions(self.alias)
        self.user = request.user
        return super().dispatch(request, *args, **kwargs)


class SessionListView(SessionsView, TemplateView):
    """``GET``: the user's sessions, the current one first, then the most recently seen."""

    template_name = "cache_sessions/session_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        listed = users.user_sessions(self.user, current=self.request, alias=self.alias)
        return super().get_context_data(**self.page_context(listed), **kwargs)


class SessionDeleteView(SessionsView):
    """``POST``: end one session (by the id the list shows); ending the current one logs out."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, session_id: str) -> HttpResponse:
        current = self.is_current(session_id)
        with revoking(SELF, request):
            if not users.revoke_session(self.user, session_id, alias=self.alias):
                raise _not_theirs()
        if current:
            logout(request)
        return self.ended_one(current)


class SessionDeleteOtherView(SessionsView):
    """``POST``: end every session of the user but the current one."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        with revoking(SELF, request):
            count = users.revoke_other_sessions(request, alias=self.alias)
        return self.ended_others(count)


class SessionDeleteAllView(SessionsView):
    """``POST``: end every session of the user, the current one too (a logout everywhere)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        with revoking(SELF, request):
            count = users.revoke_all_sessions(self.user, alias=self.alias)
        logout(request)
        return self.ended_all(count)


# Async twins: the same pages and actions, with every Redis call on the event loop ----


@PROTECTED
class AsyncSessionsView(AccessMixin, SessionsMixin, View):
    """An async session view: ``LoginRequiredMixin``'s behaviour, with ``request.auser()``."""

    async def dispatch(  # type: ignore[override]  # an async view's dispatch is a coroutine function
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        users.require_user_sessions(self.alias)
        # Resolved here, on the loop: the sync request.user would load the user in a blocking call.
        self.user = request.user = await request.auser()
        if not self.user.is_authenticated:
            return self.handle_no_permission()
        return await cast("Awaitable[HttpResponseBase]", super().dispatch(request, *args, **kwargs))


class AsyncSessionListView(TemplateResponseMixin, AsyncSessionsView):
    template_name = SessionListView.template_name

    async def get(self, request: HttpRequest) -> HttpResponse:
        listed = await users.auser_sessions(self.user, current=request, alias=self.alias)
        return self.render_to_response({"view": self, **self.page_context(listed)})


class AsyncSessionDeleteView(AsyncSessionsView):
    http_method_names = ["post"]

    async def post(self, request: HttpRequest, session_id: str) -> HttpResponse:
        current = self.is_current(session_id)
        with revoking(SELF, request):
            if not await users.arevoke_session(self.user, session_id, alias=self.alias):
                raise _not_theirs()
        if current:
            await alogout(request)
        return self.ended_one(current)


class AsyncSessionDeleteOtherView(AsyncSessionsView):
    http_method_names = ["post"]

    async def post(self, request: HttpRequest) -> HttpResponse:
        with revoking(SELF, request):
            count = await users.arevoke_other_sessions(request, alias=self.alias)
        return self.ended_others(count)


class AsyncSessionDeleteAllView(AsyncSessionsView):
    http_method_names = ["post"]

    async def post(self, request: HttpRequest) -> HttpResponse:
        with revoking(SELF, request):
            count = await users.arevoke_all_sessions(self.user, alias=self.alias)
        await alogout(request)
        return self.ended_all(count)
