"""Four pages that put the session engine to work: login, a cart, a look inside Redis, logout."""

from __future__ import annotations

from pprint import pformat

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

CATALOG = {
    "TEA-01": "Green tea",
    "MUG-02": "Coffee mug",
    "BAG-03": "Tote bag",
}
MAX_QTY = 99


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        user = authenticate(
            request,
            username=request.POST.get("username", ""),
            password=request.POST.get("password", ""),
        )
        if user is not None:
            login(request, user)  # cycles the session key: the old one is deleted from Redis
            return redirect("home")
        error = "Wrong username or password."
    return render(request, "shop/home.html", {"error": error}, status=400 if error else 200)


@require_http_methods(["GET", "POST"])
def cart(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "empty":
            request.session["cart"] = []
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
                return redirect("cart")
        return _render_cart(request, f"Pick a product and a quantity from 1 to {MAX_QTY}.", status=400)

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
    context: dict[str, object] = {"session_key": session.session_key}
    if session.session_key:
        # Where and how the engine stores this session (string or hash mode).
        info = session._storage.describe(session.session_key)
        # A fresh store reads the session back from Redis through the engine.
        stored = type(session)(session.session_key).load()
        context.update(
            mode=info["mode"],
            redis_key=_name(info["key"]),
            field_hex=info["field"].hex() if info.get("field") is not None else None,
            overflow_key=_name(info["overflow_key"]) if info.get("overflow_key") else None,
            ttl=info["ttl"],
            size=info["bytes"],
            bucket_fields=info.get("bucket_fields"),
            bucket_encoding=_text(info.get("bucket_encoding")),
            stored=pformat(stored, sort_dicts=True),
        )
    return render(request, "shop/session.html", context)


def _name(name: bytes) -> dict[str, str]:
    """A Redis name for humans: as text (non-UTF-8 bytes backslash-escaped) and as a bytes repr."""
    return {"text": name.decode(errors="backslashreplace"), "repr": repr(name)}


def _text(value: bytes | str | None) -> str | None:
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else value


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)  # flushes the session: its Redis key is deleted
    return redirect("home")
