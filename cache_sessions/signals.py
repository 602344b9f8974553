"""``sessions_revoked``: sent after sessions of a user were ended through ``cache_sessions.users``.

Every way of ending sessions goes through that API: the session pages (``urls.py``),
the admin, ``manage.py usersessions`` and a site's own calls. The signal is sent
once per call that ended at least one session, after they are gone, with:

- ``sender``: the user model;
- ``user_id``: the user's id as Django's ``login()`` keeps it in the session (a str);
- ``count``: how many sessions were ended (1 or more);
- ``by``: who asked: ``"self"`` (the user, on the session pages), ``"admin"`` (the
  admin), ``"command"`` (``usersessions``) or ``"api"`` (any other call);
- ``request``: the request that asked, or ``None`` (the command, a call made
  outside a request).

A site labels its own calls with ``revoking()``::

    with revoking(by="support", request=request):
        users.revoke_all_sessions(user)

Receivers run as Django runs them: sync ones from ``send()``, and from ``asend()``
(the async API) in a thread; async ones awaited. An exception in a receiver
reaches the caller, after the sessions were ended.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.contrib.auth import get_user_model
from django.dispatch import Signal
from django.http import HttpRequest

from .storage.index import user_id_of

sessions_revoked = Signal()

SELF, ADMIN, COMMAND, API = "self", "admin", "command", "api"

P = ParamSpec("P")
Ended = TypeVar("Ended", bound=int)  # a count, or a bool (one session ended or not)


@dataclass(frozen=True)
class Origin:
    """Who asks for the revocations made while it is current, and through which request."""

    by: str
    request: HttpRequest | None = None


_origin: ContextVar[Origin | None] = ContextVar("cache_sessions_revoking", default=None)


@contextmanager
def revoking(by: str, request: HttpRequest | None = None) -> Iterator[None]:
    """Label the revocations made inside the block (in this thread or task) for ``sessions_revoked``."""
    token = _origin.set(Origin(by, request))
    try:
        yield
    finally:
        _origin.reset(token)


def _subject(function: Callable[..., Any]) -> Callable[..., Any]:
    """Which argument of ``function`` is the user (or the request whose user it is): its first."""
    signature = inspect.signature(function)
    return lambda *args, **kwargs: next(iter(signature.bind(*args, **kwargs).arguments.values()))


def _arguments(user: Any, count: int, request: HttpRequest | None) -> dict[str, Any]:
    origin = _origin.get() or Origin(API)
    return {
        "sender": get_user_model(),
        "user_id": user_id_of(user),
        "count": count,
        "by": origin.by,
        "request": origin.request or request,
    }


def reported(function: Callable[P, Ended]) -> Callable[P, Ended]:
    """Send ``sessions_revoked`` after ``function`` (a sync revocation of the API) ended sessions."""
    subject_of = _subject(function)

    @functools.wraps(function)
    def revoke(*args: P.args, **kwargs: P.kwargs) -> Ended:
        ended = function(*args, **kwargs)
        if ended:
            subject = subject_of(*args, **kwargs)
            request = subject if isinstance(subject, HttpRequest) else None
            user = subject.user if request is not None else subject
            sessions_revoked.send(**_arguments(user, int(ended), request))
        return ended

    return revoke


def areported(function: Callable[P, Awaitable[Ended]]) -> Callable[P, Awaitable[Ended]]:
    """``reported`` for an async revocation: the signal goes through ``asend()``."""
    subject_of = _subject(function)

    @functools.wraps(function)
    async def revoke(*args: P.args, **kwargs: P.kwargs) -> Ended:
        ended = await function(*args, **kwargs)
        if ended:
            subject = subject_of(*args, **kwargs)
            request = subject if isinstance(subject, HttpRequest) else None
            user = subject if request is None else await _auser(request)
            await sessions_revoked.asend(**_arguments(user, int(ended), request))
        return ended

    return revoke


async def _auser(request: HttpRequest) -> Any:
    auser = getattr(request, "auser", None)
    return await auser() if auser is not None else request.user
