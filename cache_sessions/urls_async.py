"""``include("cache_sessions.urls_async")``: ``urls.py``'s pages and names, served by the
async views (every Redis call on the event loop, through ``redis.asyncio``)."""

from __future__ import annotations

from . import views
from .urls import session_urls

app_name = "cache_sessions"

urlpatterns = session_urls(
    views.AsyncSessionListView.as_view(),
    views.AsyncSessionDeleteView.as_view(),
    views.AsyncSessionDeleteOtherView.as_view(),
    views.AsyncSessionDeleteAllView.as_view(),
)
