"""What ``USER_SESSION_METADATA`` keeps of a request in a session's index record
(``index.py``): its IP address and a short user agent, both bounded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.http import HttpRequest

MAX_ADDRESS = 45  # the longest IPv6 address in text (an IPv4-mapped one)
MAX_USER_AGENT = 64


def request_meta(request: HttpRequest) -> dict[str, str]:
    """What ``USER_SESSION_METADATA`` keeps of a request: its IP address and a short user agent."""
    return {
        "i": str(request.META.get("REMOTE_ADDR", ""))[:MAX_ADDRESS],
        "a": summarize(request.headers.get("User-Agent", "")),
    }


BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)
_TOOL = re.compile(r"^([A-Za-z][\w.-]{0,30})/")


def summarize(user_agent: str) -> str:
    """``"Firefox on Linux"``: a user agent people recognise, in at most 64 characters."""
    browser = next((name for marker, name in BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return str(browser or system)
    tool = _TOOL.match(user_agent)  # curl/8.5, python-requests/2.32...
    return tool.group(1) if tool else user_agent[:MAX_USER_AGENT]
