"""Pages that put the session engine to work: login, a cart, a look inside Redis, logout.

Where you are logged in is cache_sessions' own page (``include("cache_sessions.urls")``)."""

from __future__ import annotations

import time
from pprint import pformat
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, authenticate, login, logout
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cache_sessions.errors import CorruptSession
from cache_sessions.format.codec import read_header

from . import redis_info

CATALOG = {
    "TEA-01": "Green tea",
    "MUG-02": "Coffee mug",
    "BAG-03": "Tote bag",
}
MAX_QTY = 99
# The notice a cart form leaves for the page it redirects to (see cart()).
CART_NOTICE = "cart"


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    error = ""
    next_url = _next_url(request)
    if request.method == "POST":
        user = authenticate(
            request,
            username=request.POST.get("username", ""),
            password=request.POST.get("password", ""),
        )
        if user is not None:
            login(request, user)  # cycles the session key: the old one is deleted from Redis
            return redirect(next_url or "home")
        error = "Wrong username or password."
    context = {"error": error, "hash_mode": _options().get("USE_HASH", True), "next": next_url}
    return render(request, "shop/home.html", context, status=400 if error else 200)


def _next_url(request: HttpRequest) -> str:
    """Where the login form was asked to lead (``?next=``), if that is a page of this site; else ``""``."""
    next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return next_url
    return ""


def _options() -> dict[str, Any]:
    return settings.CACHES[settings.SESSION_CACHE_ALIAS].get("OPTIONS", {})


@require_http_methods(["GET", "POST"])
def cart(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "empty":
            request.session["cart"] = []
            messages.info(request, "The cart is empty.", extra_tags=CART_NOTICE)
            return redirect("cart")
        if action == "add":
            sku = request.POST.get("sku", "")
            try:
                qty = int(request.POST.get("qty", "1"))
            except ValueError:
                qty = 0
            if sku in CATALOG and 1 <= qty <= MAX_QTY:
                items = [dict(item) for item in request.session.get("cart", [])]
                for item in items:
                    if item["sku"] == sku:
                        item["qty"] += qty
                        break
                else:
                    items.append({"sku": sku, "name": CATALOG[sku], "qty": qty})
                # A new list, assigned: the session sees the change and saves it.
                request.session["cart"] = items
                messages.success(request, f"Added {CATALOG[sku]} (quantity {qty}) to the cart.", extra_tags=CART_NOTICE)
                return redirect("cart")
        return _render_cart(request, f"Pick a product and a quantity from 1 to {MAX_QTY}.", status=400)

    # Count the views of this page, not the redirects after a form here: the
    # page a cart form redirects to carries that form's notice.
    if not any(message.extra_tags == CART_NOTICE for message in messages.get_messages(request)):
        request.session["visits"] = request.session.get("visits", 0) + 1
    return _render_cart(request)


def _render_cart(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    items = request.session.get("cart", [])
    context = {
        "visits": request.session.get("visits", 0),
        "items": items,
        "total_qty": sum(item["qty"] for item in items),
        "catalog": sorted(CATALOG.items()),
        "max_qty": MAX_QTY,
        "error": error,
    }
    return render(request, "shop/cart.html", context, status=status)


@require_http_methods(["GET"])
def session_info(request: HttpRequest) -> HttpResponse:
    session = request.session
    redis = caches[settings.SESSION_CACHE_ALIAS].get_client()
    context: dict[str, Any] = {
        "session_key": session.session_key,
        "server": redis_info.server_name(redis.info("server")),
        "address": redis_info.address(redis.connection_pool.connection_kwargs),
    }
    if session.session_key:
        # Where and how the engine stores this session (string or hash mode).
        info = session._storage.describe(session.session_key)
        # A fresh store reads the session back from Redis through the engine.
        stored = type(session)(session.session_key).load()
        context.update(
            mode=info["mode"],
            redis_key=redis_info.printable(info["key"]),
            key_ttl=redis_info.ttl(info["ttl"]),
            size=info["bytes"],
            stored=pformat(stored, sort_dicts=True),
        )
        if info["mode"] == "hash":
            overflow = info["overflow_key"]
            context.update(
                field_hex=info["field"].hex(),
                overflow_key=redis_info.printable(overflow) if overflow else None,
                expires=_own_expiry(redis.hget(info["key"], info["field"]), info.get("field_ttl")),
                bucket_ttl=redis_info.ttl(redis.ttl(info["key"])),
                bucket_fields=info["bucket_fields"],
                bucket_encoding=redis_info.encoding(info["bucket_encoding"]),
                compact=info["bucket_encoding"] in (b"listpack", b"ziplist", b"listpackex"),
            )
        else:
            context["expires"] = context["key_ttl"]  # a string key expires by its own TTL
    return render(request, "shop/session.html", context)


def _own_expiry(value: bytes | None, field_ttl: int | None = None) -> dict[str, str] | None:
    """The expiry a hash-mode value carries in its header (the bucket's TTL covers its longest-lived field),
    or, on Redis 8, its field's own TTL."""
    if not value:
        return None
    if field_ttl is not None and field_ttl > 0:
        return redis_info.when(time.time() + field_ttl)
    try:
        expires_at = read_header(value)[2]
    except CorruptSession:
        return None
    return redis_info.when(expires_at) if expires_at is not None else None


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)  # flushes the session: its Redis field (or key) is deleted
    messages.info(request, "You are logged out: your session was deleted from Redis.")
    return redirect("home")


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """The tab's icon, served by the site itself: it works with DEBUG off, where runserver serves no static files."""
    return render(request, "shop/favicon.svg", content_type="image/svg+xml")
