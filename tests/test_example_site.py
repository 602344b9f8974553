"""End to end: the example site, run by ``manage.py runserver``, driven over real HTTP.

The site runs in subprocesses with its own settings (``example_project.settings``)
against a redis-server of this module's own; nothing here uses the Django
setup of the rest of the suite. The scenario runs once per storage mode
(``DEMO_USE_HASH``: hash mode, the default, and string mode); the modes share
one redis-server, flushed before each site starts.
"""

from __future__ import annotations

import datetime
import html
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import redis

from cache_sessions.format.codec import read_header
from cache_sessions.storage.bucket_names import bucket_name, bucket_number, digest
from cache_sessions.storage.options import DEFAULTS
from cache_sessions.testing import RedisServer, free_port

pytestmark = [pytest.mark.e2e]

PROJECT_DIR = Path(__file__).resolve().parent.parent / "example_project"
STARTUP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
# The namespace of the "sessions" alias in example_project.settings:
# KEY_PREFIX "" and VERSION 1 (django-redis's defaults), sessions under "s".
NAMESPACE = b":s1:"
# What the embedded Redis of the demo runs with (see example_project.settings).
REDIS_CONFIG = {"hash-max-ziplist-value": "256"}


@dataclass
class Site:
    base_url: str
    redis_url: str
    use_hash: bool


def _site_env(redis_url: str, db_path: Path, demo_use_hash: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CACHE_SESSIONS_EXAMPLE_EMBEDDED_REDIS", None)
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",  # pytest-django exported tests.settings
        REDIS_URL=redis_url,
        DEMO_DB_PATH=str(db_path),
        DEMO_USE_HASH=demo_use_hash,
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(config=REDIS_CONFIG).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["1", "0"], ids=["hash", "string"])
def site(request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path) -> Iterator[Site]:
    """The site in one storage mode: ``request.param`` is its ``DEMO_USE_HASH``."""
    use_hash = request.param != "0"
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()  # the other mode's run leaves nothing behind
    env = _site_env(redis_server.url, tmp_path / "db.sqlite3", request.param)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}"

    port = free_port()
    log_path = tmp_path / "runserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(base_url, process, log_path)
        yield Site(base_url=base_url, redis_url=redis_server.url, use_hash=use_hash)
    finally:
        _stop(process)


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"runserver exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(base_url + "/", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"runserver did not answer within {STARTUP_TIMEOUT}s:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


class Browser:
    """urllib with a real cookie jar; follows redirects like a browser (POST -> 302 -> GET)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.url = ""  # where the last request ended, after redirects
        self.content_type = ""  # of the last response

    def cookie(self, name: str) -> str | None:
        return next((cookie.value for cookie in self.jar if cookie.name == name), None)

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=REQUEST_TIMEOUT) as response:
            assert response.status == 200, (path, response.status)
            self.url, self.content_type = response.url, response.headers.get_content_type()
            return response.read().decode()

    def post(self, path: str, form_page: str, data: dict[str, str]) -> str:
        fields = {"csrfmiddlewaretoken": csrf_token(form_page), **data}
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base_url + path, data=body, method="POST")
        with self.opener.open(request, timeout=REQUEST_TIMEOUT) as response:
            assert response.status == 200, (path, response.status)
            self.url, self.content_type = response.url, response.headers.get_content_type()
            return response.read().decode()


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token in the form"
    return match.group(1)


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">(.*?)<', page, re.DOTALL)
    assert match, f"no #{element_id} on the page"
    return html.unescape(match.group(1))


@dataclass
class Location:
    """Where the site keeps a session in Redis DB 1, worked out without Django settings."""

    key: bytes  # string mode: the session's key; hash mode: its bucket
    field: bytes | None = None  # hash mode only
    overflow_key: bytes | None = None  # hash mode only

    @classmethod
    def of(cls, session_key: str, use_hash: bool) -> Location:
        if not use_hash:
            return cls(NAMESPACE + session_key.encode())
        bucket = NAMESPACE + bucket_name(bucket_number(session_key, DEFAULTS["BUCKETS"]))
        field = digest(session_key)
        return cls(bucket, field, bucket + b":" + field)

    def exists(self, db: redis.Redis) -> bool:
        if self.field is None:
            return bool(db.exists(self.key))
        return bool(db.hexists(self.key, self.field))

    def value(self, db: redis.Redis) -> bytes | None:
        """The stored bytes (in hash mode, inline in the bucket: the session is small)."""
        if self.field is None:
            return db.get(self.key)
        return db.hget(self.key, self.field)


def test_login_cart_session_logout(site: Site) -> None:
    sessions_db = redis.Redis.from_url(site.redis_url + "/1")
    cache_db = redis.Redis.from_url(site.redis_url + "/0")
    browser = Browser(site.base_url)

    home = browser.get("/")
    assert "Log in" in home
    assert browser.cookie("sessionid") is None

    home = browser.post("/", home, {"username": "demo", "password": "demo"})
    assert "Hello demo" in home
    session_key = browser.cookie("sessionid")
    assert session_key
    where = Location.of(session_key, site.use_hash)
    assert where.exists(sessions_db)
    assert cache_db.keys("*") == []  # sessions go to DB 1, not to the default cache
    if where.field is not None:
        # No Redis name holds the session key: fields are digests of it.
        assert sessions_db.keys(f"*{session_key}*") == []
        assert sessions_db.exists(where.overflow_key) == 0
    else:
        assert sessions_db.keys(f"*{session_key}*") == [where.key]

    browser.get("/cart/")
    cart = browser.get("/cart/")
    assert element_text(cart, "visits") == "2"
    assert "Your cart is empty." in cart

    cart = browser.post("/cart/", cart, {"action": "add", "sku": "MUG-02", "qty": "3"})
    assert "<td>MUG-02</td><td>Coffee mug</td><td>3</td>" in cart
    assert "Added Coffee mug (quantity 3) to the cart." in cart
    assert element_text(cart, "visits") == "2"  # the page after the form is not a visit
    assert browser.cookie("sessionid") == session_key
    cart = browser.get("/cart/")
    assert element_text(cart, "visits") == "3"
    assert "Added" not in cart  # a notice shows once

    page = browser.get("/session/")
    now = time.time()
    value = where.value(sessions_db)
    assert value
    assert element_text(page, "mode") == ("hash" if site.use_hash else "string")
    assert element_text(page, "redis-key") == where.key.decode()  # ASCII: shown as is
    assert "b&#x27;:s1:" not in page  # no bytes repr of a Redis name beside its text
    assert element_text(page, "server").startswith(("Redis ", "Valkey "))
    assert int(element_text(page, "size")) == len(value)
    expires = element_text(page, "expires")
    assert re.fullmatch(r"in 13 days, 23 hours|in 14 days", expires), expires
    if where.field is not None:
        # The session's own expiry, from the value's header (or, on Redis 8, its field's TTL),
        # as an absolute time too.
        expires_at = read_header(value)[2]
        shown = datetime.datetime.strptime(element_text(page, "expires-at"), "%Y-%m-%d %H:%M:%S UTC")
        if expires_at is None:
            field_expiry = sessions_db.hexpiretime(where.key, where.field)[0]
            assert abs(shown.replace(tzinfo=datetime.UTC).timestamp() - field_expiry) <= 2
            assert element_text(page, "bucket-ttl") == "never (no TTL)"  # Redis deletes an emptied bucket
        else:
            assert shown.replace(tzinfo=datetime.UTC).timestamp() == expires_at
            bucket_ttl = int(element_text(page, "bucket-ttl-seconds"))
            assert 0 <= bucket_ttl - sessions_db.ttl(where.key) <= 2  # read a moment before ours
            assert element_text(page, "bucket-ttl").startswith("in 13 days, 23 hours")
        assert element_text(page, "field") == where.field.hex()
        assert element_text(page, "overflow-key") == "none"
        assert int(element_text(page, "bucket-fields")) == sessions_db.hlen(where.key) >= 1
        encoding = sessions_db.object("encoding", where.key).decode()
        assert encoding in ("listpack", "ziplist", "listpackex")  # compact: the session fits in 256 bytes
        expected = "listpack (Redis 6.2 calls it ziplist)" if encoding == "ziplist" else encoding
        assert element_text(page, "bucket-encoding") == expected
    else:
        shown = datetime.datetime.strptime(element_text(page, "expires-at"), "%Y-%m-%d %H:%M:%S UTC")
        left = shown.replace(tzinfo=datetime.UTC).timestamp() - now
        assert abs(left - sessions_db.ttl(where.key)) <= 2  # whole seconds, read a moment apart
        assert len(value) == sessions_db.strlen(where.key)
        assert 'id="field"' not in page
        assert 'id="bucket-encoding"' not in page
    stored = element_text(page, "stored")
    assert "'cart': [{'name': 'Coffee mug', 'qty': 3, 'sku': 'MUG-02'}]" in stored
    assert "'visits': 3" in stored
    assert "'_auth_user_id'" in stored

    home = browser.post("/logout/", page, {})
    assert "Log in" in home
    assert "You are logged out" in home
    assert browser.cookie("sessionid") is None
    assert not where.exists(sessions_db)
    assert sessions_db.exists(where.key if where.field is None else where.overflow_key) == 0
    assert sessions_db.keys(f"*{session_key}*") == []


SESSIONS = "/account/sessions/"  # cache_sessions' own page (include("cache_sessions.urls"))


def test_log_out_other_devices(site: Site) -> None:
    laptop, phone = Browser(site.base_url), Browser(site.base_url)
    for browser in (laptop, phone):
        assert "Hello demo" in browser.post("/", browser.get("/"), {"username": "demo", "password": "demo"})
    sessions = laptop.get(SESSIONS)
    assert sessions.count("<tr") == 3  # a header and two sessions
    assert "(this session)" in sessions
    assert "<nav>" in sessions and "Logged in as <strong>demo</strong>" in sessions  # in the shop's own layout
    sessions = laptop.post(SESSIONS + "other/delete/", sessions, {})
    assert "1 other session was ended." in sessions
    assert sessions.count("<tr") == 2
    assert "Log in" in phone.get("/")  # the other device's next request is anonymous
    assert "Hello demo" in laptop.get("/")


def log_in(browser: Browser, path: str = "/") -> str:
    """Logs in as demo with the login form on ``path``; the page the form led to."""
    return browser.post("/", browser.get(path), {"username": "demo", "password": "demo"})


# One storage mode is enough where the page does not depend on it.
hash_mode_only = pytest.mark.parametrize("site", ["1"], ids=["hash"], indirect=True)


@hash_mode_only
def test_every_page_fits_a_phone_and_has_an_icon(site: Site) -> None:
    browser = Browser(site.base_url)
    pages = [browser.get("/"), browser.get("/cart/"), browser.get("/session/")]
    log_in(browser)
    pages += [browser.get("/"), browser.get(SESSIONS)]
    for page in pages:
        # Without it a phone lays the page out 980 px wide and shrinks it, text and all.
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
        assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in page
    icon = browser.get("/favicon.svg")
    assert browser.content_type == "image/svg+xml"
    assert re.match(r'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \d+ \d+"', icon), icon
    # What a browser asks for when a page names no icon (or before it has read the page).
    assert browser.get("/favicon.ico") == icon
    assert browser.url == site.base_url + "/favicon.svg"


@hash_mode_only
def test_a_login_goes_where_the_user_was_headed(site: Site) -> None:
    browser = Browser(site.base_url)
    login_page = browser.get(SESSIONS)
    assert browser.url == site.base_url + f"/?next={SESSIONS}"
    assert f'<input type="hidden" name="next" value="{SESSIONS}">' in login_page
    sessions = browser.post("/", login_page, {"username": "demo", "password": "demo", "next": SESSIONS})
    assert browser.url == site.base_url + SESSIONS
    assert "<h1>Your sessions</h1>" in sessions
    # A wrong password keeps where the user was headed.
    browser = Browser(site.base_url)
    with pytest.raises(urllib.error.HTTPError) as wrong:
        browser.post("/", browser.get("/?next=/cart/"), {"username": "demo", "password": "x", "next": "/cart/"})
    assert wrong.value.code == 400
    assert '<input type="hidden" name="next" value="/cart/">' in wrong.value.read().decode()


# Each is a page elsewhere, to a browser; one site serves them all (a site takes seconds to start).
OFF_SITE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "http://127.0.0.1.evil.example/",
    "/\t/evil.example",  # a browser drops the tab: //evil.example
    "///evil.example",
    " https://evil.example/",
]


@hash_mode_only
def test_a_login_never_leaves_the_site(site: Site) -> None:
    for next_url in OFF_SITE:
        browser = Browser(site.base_url)
        form_page = browser.get("/?" + urllib.parse.urlencode({"next": next_url}))
        assert "evil" not in form_page and "javascript" not in form_page, next_url  # not carried in the form either
        home = browser.post("/", form_page, {"username": "demo", "password": "demo", "next": next_url})
        assert browser.url == site.base_url + "/", next_url
        assert "Hello demo" in home


def empty_cells(page: str) -> list[str]:
    return re.findall(r"<t[hd][^>]*>\s*</t[hd]>", page)


def test_sessions_table_says_just_now_and_has_no_empty_cell(site: Site) -> None:
    laptop, phone = Browser(site.base_url), Browser(site.base_url)
    log_in(laptop)
    sessions = laptop.get(SESSIONS)
    assert "minutes ago" not in sessions
    assert sessions.count(">just now</time>") == 2  # logged in, last seen
    assert empty_cells(sessions) == []
    assert "End all other sessions" not in sessions  # no other session to end
    log_in(phone)
    sessions = laptop.get(SESSIONS)
    assert sessions.count(">just now</time>") == 4
    assert empty_cells(sessions) == []
    assert "End all other sessions" in sessions
