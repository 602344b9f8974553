from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("shop.urls")),
    path("", include("cache_sessions.urls")),  # /account/sessions/: where you are logged in
    path("admin/", admin.site.urls),
]
