from django.urls import path
from django.views.generic import RedirectView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cart/", views.cart, name="cart"),
    path("session/", views.session_info, name="session"),
    path("logout/", views.logout_view, name="logout"),
    path("favicon.svg", views.favicon, name="favicon"),
    # Asked for by browsers that have not read a page's <link rel="icon"> (and by bookmarks, feed readers).
    path("favicon.ico", RedirectView.as_view(pattern_name="favicon", permanent=True)),
]
