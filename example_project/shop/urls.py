from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cart/", views.cart, name="cart"),
    path("session/", views.session_info, name="session"),
    path("devices/", views.devices, name="devices"),
    path("logout/", views.logout_view, name="logout"),
]
