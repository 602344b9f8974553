"""cache_sessions' session pages and admin in a real browser: headless Chromium, driven by
playwright, on the example site run as ``make demo`` runs it (``tools/screenshots.py``).

Each browser context is a device with its own cookies: one ends another's session, and the
other's next page is the login form. Skipped, saying why, without Debian's ``chromium``
(``apt-get install chromium``) or the ``playwright`` package (the ``screenshots`` extra);
failed instead under ``make test BROWSER_TESTS=1`` (CI's first leg), which must run them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tools.screenshots import CHROMIUM_FLAGS, OTHER_DEVICE, demo_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
SESSIONS = "/account/sessions/"
TABLET = "Mozilla/5.0 (Linux; Android 14; Pixel Tablet) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


REQUIRED = os.environ.get("CACHE_SESSIONS_BROWSER_TESTS") == "required"  # set by make test BROWSER_TESTS=1


def missing(reason: str) -> None:
    (pytest.fail if REQUIRED else pytest.skip)(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM:
        missing("no chromium: apt-get install chromium (or set CHROMIUM to a Chromium binary)")
    try:
        from playwright import sync_api
    except ImportError:
        missing("no playwright: pip install '.[screenshots]' (or make test BROWSER_TESTS=1)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base_url(browser: Browser) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as workdir, demo_site(True, Path(workdir)) as url:
        yield url


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """The devices a test opens (closed after it): one per ``device()`` call."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


@pytest.fixture
def device(browser: Browser, base_url: str, contexts: list[BrowserContext]) -> Any:
    def open_device(user_agent: str | None = None, username: str = "demo", password: str = "demo") -> Page:
        context = browser.new_context(**({"user_agent": user_agent} if user_agent else {}))
        contexts.append(context)
        page = context.new_page()
        page.goto(base_url + "/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("form button[type=submit]")
        page.wait_for_url(base_url + "/")
        return page

    return open_device


def logged_out(page: Page, base_url: str) -> bool:
    """Whether the device's next page is anonymous: the sessions page sends it to the login form."""
    page.goto(base_url + SESSIONS)
    return page.url == f"{base_url}/?next={SESSIONS}" and page.locator("input[name=password]").count() == 1


def test_list_end_one_end_the_others_end_all(base_url: str, device: Any) -> None:
    from playwright.sync_api import expect

    laptop, phone = device(), device(OTHER_DEVICE)
    laptop.goto(base_url + SESSIONS)
    rows = laptop.locator("table.cache-sessions-list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Chrome on Linux")
    expect(rows.first).to_contain_text("(this session)")
    expect(rows.nth(1)).to_contain_text("iOS")
    expect(rows.nth(1)).to_contain_text("just now")

    rows.nth(1).get_by_role("button", name="End session").click()
    expect(laptop.locator("#messages")).to_contain_text("The session was ended: that device is logged out.")
    expect(rows).to_have_count(1)
    assert logged_out(phone, base_url)

    _phone, tablet = device(OTHER_DEVICE), device(TABLET)
    laptop.reload()
    expect(rows).to_have_count(3)
    laptop.get_by_role("button", name="End all other sessions").click()
    expect(laptop.locator("#messages")).to_contain_text("2 other sessions were ended.")
    expect(rows).to_have_count(1)
    expect(laptop.get_by_role("button", name="End all other sessions")).to_have_count(0)
    assert logged_out(_phone, base_url) and logged_out(tablet, base_url)

    laptop.goto(base_url + SESSIONS)
    laptop.get_by_role("button", name="Log out everywhere").click()
    laptop.wait_for_url(base_url + "/")
    expect(laptop.locator("#messages")).to_contain_text("You are logged out everywhere: 1 session was ended.")
    expect(laptop.locator("input[name=password]")).to_have_count(1)


def test_the_admin_logs_a_user_out_everywhere(base_url: str, device: Any) -> None:
    from playwright.sync_api import expect

    admin = device()  # demo is a superuser in the example site
    add_user(admin, base_url, "alice")
    alice = device(OTHER_DEVICE, "alice", "a long passphrase")
    admin.goto(base_url + "/admin/auth/user/?q=alice")
    admin.get_by_role("link", name="alice", exact=True).click()
    panel = admin.locator("#cache-sessions")
    expect(panel.locator("tbody tr")).to_have_count(1)
    expect(panel).to_contain_text("iOS")
    change_page = admin.url
    panel.get_by_role("button", name="Log this user out everywhere").click()
    expect(admin.locator(".messagelist")).to_contain_text("Alice was logged out everywhere: 1 session ended.")
    assert admin.url == change_page
    expect(panel).to_contain_text("This user is not logged in anywhere.")
    assert logged_out(alice, base_url)

    _alice, again = device(OTHER_DEVICE, "alice", "a long passphrase"), device(TABLET, "alice", "a long passphrase")
    admin.goto(base_url + "/admin/auth/user/?q=alice")
    admin.locator("input[name=_selected_action]").check()
    admin.select_option("select[name=action]", "log_out_everywhere")
    admin.click("button[name=index]")  # "Go"
    expect(admin.locator(".messagelist")).to_contain_text("1 user was logged out everywhere. 2 sessions ended.")
    assert logged_out(_alice, base_url) and logged_out(again, base_url)

    admin.goto(change_page.replace("/change/", "/history/"))
    expect(admin.locator("#change-history")).to_contain_text("Logged out everywhere: 1 session ended.")
    expect(admin.locator("#change-history")).to_contain_text("Logged out everywhere: 2 sessions ended.")


def add_user(admin: Page, base_url: str, username: str) -> None:
    """A user added through the admin's own form, as a person would."""
    admin.goto(base_url + "/admin/auth/user/add/")
    admin.fill("input[name=username]", username)
    admin.fill("input[name=password1]", "a long passphrase")
    admin.fill("input[name=password2]", "a long passphrase")
    admin.click("input[name=_save]")
    admin.wait_for_url("**/change/")
