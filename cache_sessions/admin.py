"""The admin (``USER_SESSIONS``): a user's sessions on their change page with a "Log out
everywhere" button, and the same as an action on the user list.

Both need the permission to change that user (``has_change_permission``: ``auth.change_user``
for Django's user model); someone who may only view users sees the sessions, not the button.
Each logout is written to the admin's history (``LogEntry``) with how many sessions ended,
and sends ``signals.sessions_revoked`` with ``by="admin"``.

A site's own user admin gets it by putting the mixin first::

    @admin.register(User)
    class UserAdmin(UserSessionsAdminMixin, BaseUserAdmin): ...

Otherwise cache_sessions adds the mixin to the admin registered for the user model on
``admin.site`` when Django loads the admin modules (``patch_user_admin``), unless
``CACHE_SESSIONS_PATCH_USER_ADMIN = False``, or the admin already has a name of the mixin's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import translation
from django.utils.translation import gettext_lazy, ngettext

from . import users
from .engine import display
from .signals import ADMIN, revoking

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


class UserSessionsAdminMixin(ModelAdmin):
    """For a user admin: the user's sessions and "Log out everywhere" (a button, an action)."""

    user_sessions_alias: str | None = None  # the cache alias (default SESSION_CACHE_ALIAS)
    user_sessions_template = "cache_sessions/admin/change_form.html"

    def user_sessions_on(self) -> bool:
        return users.user_sessions_on(self.user_sessions_alias)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_log_out_everywhere"
        view = self.admin_site.admin_view(self.log_out_everywhere_view)
        return [path("<path:object_id>/sessions/log-out/", view, name=name), *super().get_urls()]

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 asks where the actions go (the user list or a change form) and warns about an
        # override that cannot be told; Django 5.2 never passes it.
        where = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **where)
        on_the_list = action_location is None or getattr(action_location, "value", None) == "CHANGE_LIST"
        offered = self.actions is not None and "_popup" not in request.GET  # as Django decides for its own
        if on_the_list and offered and self.has_change_permission(request) and self.user_sessions_on():
            actions["log_out_everywhere"] = self.get_action("log_out_everywhere", **where)
        return actions

    @admin.action(description=gettext_lazy("Log the selected users out everywhere"))
    def log_out_everywhere(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        chosen = list(queryset)
        ended = sum(self.end_user_sessions(request, user) for user in chosen)
        users_text = ngettext(
            "%(users)d user was logged out everywhere.", "%(users)d users were logged out everywhere.", len(chosen)
        ) % {"users": len(chosen)}
        ended_text = ngettext("%(count)d session ended.", "%(count)d sessions ended.", ended) % {"count": ended}
        self.message_user(request, f"{users_text} {ended_text}", messages.SUCCESS)

    def end_user_sessions(self, request: HttpRequest, user: Model) -> int:
        """End every session of ``user`` and write it to the admin's history; how many ended."""
        with revoking(ADMIN, request):
            count = users.revoke_all_sessions(user, alias=self.user_sessions_alias)
        with translation.override(settings.LANGUAGE_CODE):  # one language for the whole history
            message = ngettext(
                "Logged out everywhere: %(count)d session ended.",
                "Logged out everywhere: %(count)d sessions ended.",
                count,
            ) % {"count": count}
        self.log_change(request, user, message)
        return count

    def log_out_everywhere_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """``POST``: the button of the change page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404("No such user.")
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        users.require_user_sessions(self.user_sessions_alias)
        count = self.end_user_sessions(request, user)
        text = ngettext(
            "%(user)s was logged out everywhere: %(count)d session ended.",
            "%(user)s was logged out everywhere: %(count)d sessions ended.",
            count,
        ) % {"user": user, "count": count}
        self.message_user(request, text, messages.SUCCESS)
        change = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        url = reverse(change, args=[quote(user.pk)], current_app=self.admin_site.name)
        return HttpResponseRedirect(self.with_filters(request, url))

    def with_filters(self, request: HttpRequest, url: str) -> str:
        """``url`` with the user list's filters the page was reached with, as the admin keeps them."""
        context: dict[str, Any] = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
        return add_preserved_filters(context, url)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        """The admin's own change form, with the user's sessions below it."""
        response = super().render_change_form(request, context, add, change, form_url, obj)
        if add or obj is None or not isinstance(response, TemplateResponse) or not self.user_sessions_on():
            return response
        parent = names = response.template_name  # the admin's own: a name, names, or a Template
        if isinstance(names, str | list | tuple):
            parent = select_template([names] if isinstance(names, str) else names)
        response.context_data = {
            **(response.context_data or {}),
            "cache_sessions_parent": parent,
            "cache_sessions": self.user_sessions_panel(request, obj),
        }
        response.template_name = self.user_sessions_template
        return response

    def user_sessions_panel(self, request: HttpRequest, user: Model) -> dict[str, Any]:
        alias = self.user_sessions_alias
        log_out = f"admin:{self.opts.app_label}_{self.opts.model_name}_log_out_everywhere"
        return {
            "sessions": display.shown(users.user_sessions(user, current=request, alias=alias)),
            "metadata": users.metadata_on(alias),
            "can_log_out": self.has_change_permission(request, user),
            "log_out_url": self.with_filters(
                request, reverse(log_out, args=[quote(user.pk)], current_app=self.admin_site.name)
            ),
        }


# Names the mixin adds: an admin that has one of them already is not patched (it would lose it).
OWN_NAMES = frozenset(
    name for name in vars(UserSessionsAdminMixin) if not name.startswith("__") and not hasattr(admin.ModelAdmin, name)
)


def patch_user_admin(site: admin.AdminSite | None = None) -> bool:
    """Add the mixin to the admin registered for the user model on ``site`` (``admin.site``),
    when that is safe: whether it was patched."""
    site = site or admin.site
    if not getattr(settings, "CACHE_SESSIONS_PATCH_USER_ADMIN", True):
        return False
    model = get_user_model()
    registered = site._registry.get(model)
    if registered is None or isinstance(registered, UserSessionsAdminMixin):
        return False
    cls = type(registered)
    if any(hasattr(cls, name) for name in OWN_NAMES):
        return False
    patched = type(cls.__name__, (UserSessionsAdminMixin, cls), {"__module__": cls.__module__})
    site.unregister(model)
    site.register(model, patched)
    return True


patch_user_admin()  # the user admin of an app listed before cache_sessions; apps.py patches the others
