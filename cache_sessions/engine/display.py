"""What the session pages (``views.py``) and the admin (``admin.py``) show of a user's
sessions: times in the active language, the device a user agent summary names.
(Whether the site keeps them at all, ``USER_SESSIONS``, is asked of ``users.py``.)"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils.timesince import timesince
from django.utils.translation import gettext

from ..storage import index_meta
from .user_sessions import UserSession

JUST_NOW = datetime.timedelta(minutes=1)  # timesince() would say "0 minutes"
# The names index_meta.summarize() joins as "<browser> on <system>", so that the join is translated.
_BROWSERS = frozenset(name for _, name in index_meta.BROWSERS)
_SYSTEMS = frozenset(name for _, name in index_meta.SYSTEMS)


@dataclass(frozen=True)
class ShownSession:
    """A session as a page shows it: times as aware datetimes, the device in the active language."""

    id: str
    current: bool
    device: str | None  # None without USER_SESSION_METADATA (or a user agent)
    ip: str | None
    created: datetime.datetime | None
    last_seen: datetime.datetime | None

    @property
    def created_ago(self) -> str:
        return ago(self.created)

    @property
    def last_seen_ago(self) -> str:
        return ago(self.last_seen)


def shown(listed: list[UserSession]) -> list[ShownSession]:
    return [
        ShownSession(s.id, s.current, device_name(s.user_agent), s.ip or None, _moment(s.created), _moment(s.last_seen))
        for s in listed
    ]


def _moment(timestamp: int | None) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC) if timestamp else None


def ago(moment: datetime.datetime | None) -> str:
    """``"just now"``, ``"2 hours, 5 minutes ago"``, or ``""`` for no moment (in the active language)."""
    if moment is None:
        return ""
    if datetime.datetime.now(datetime.UTC) - moment < JUST_NOW:
        return gettext("just now")
    return gettext("%(time)s ago") % {"time": timesince(moment)}


def device_name(user_agent: str | None) -> str | None:
    """The summary the index keeps ("Firefox on Linux"), its "on" translated."""
    if not user_agent:
        return None
    browser, on, system = user_agent.partition(" on ")
    if on and browser in _BROWSERS and system in _SYSTEMS:
        return gettext("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    return user_agent
