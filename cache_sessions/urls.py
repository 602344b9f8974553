"""The signed-in user's sessions (``USER_SESSIONS``)::

    path("", include("cache_sessions.urls")),        # sync views
    path("", include("cache_sessions.urls_async")),  # or: their async twins, for ASGI sites

give, in the namespace ``cache_sessions`` (the paths and names django-user-sessions uses):

    account/sessions/                  session_list          GET: the list
    account/sessions/<id>/delete/      session_delete        POST: end one session
    account/sessions/other/delete/     session_delete_other  POST: end all the others
    account/sessions/all/delete/       session_delete_all    POST: end all, logging out
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, path

from . import views

app_name = "cache_sessions"


def session_urls(
    list_view: Callable[..., Any],
    delete_view: Callable[..., Any],
    delete_other_view: Callable[..., Any],
    delete_all_view: Callable[..., Any],
) -> list[URLPattern]:
    """The URL patterns, for these views (``urls_async.py`` gives the async ones)."""
    return [
        path("account/sessions/", list_view, name="session_list"),
        path("account/sessions/other/delete/", delete_other_view, name="session_delete_other"),
        path("account/sessions/all/delete/", delete_all_view, name="session_delete_all"),
        path("account/sessions/<str:session_id>/delete/", delete_view, name="session_delete"),
    ]


urlpatterns = session_urls(
    views.SessionListView.as_view(),
    views.SessionDeleteView.as_view(),
    views.SessionDeleteOtherView.as_view(),
    views.SessionDeleteAllView.as_view(),
)
