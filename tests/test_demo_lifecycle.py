"""The demo's embedded server never outlives ``manage.py runserver``.

Each test runs the real ``runserver``, autoreloader included (a parent that
starts the server and a child that serves), in a session of its own as a
shell runs a job, with no ``REDIS_URL``: the site starts its embedded server.
It reads the server's socket from runserver's banner and the server's pid
from the server itself, sends a signal the way it arrives in real life, and
checks that runserver, its port, the server and the server's temp dir are
all gone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cache_sessions.testing import free_port

pytestmark = [pytest.mark.e2e]

PROJECT_DIR = Path(__file__).resolve().parent.parent / "example_project"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 15.0


@dataclass
class Demo:
    process: subprocess.Popen[bytes]  # the autoreloader's parent, leader of its process group
    port: int
    socket_path: Path
    server_pid: int
    banner: str


def _poll(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout}s for {what}")
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _terminal_signals() -> None:
    """The dispositions a shell's foreground job starts with: a test run started under nohup
    ignores SIGHUP, one started in the background (``make test &``) ignores SIGINT and SIGQUIT,
    and Python leaves an ignored SIGINT ignored (no KeyboardInterrupt)."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    env = dict(os.environ)
    for name in ("REDIS_URL", "CACHE_SESSIONS_EXAMPLE_EMBEDDED_REDIS"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",  # pytest-django exported tests.settings
        DEMO_DB_PATH=str(tmp_path / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    log_path = tmp_path / "runserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A terminal's runserver gets the default dispositions, not ignored ones inherited from
            # the test run (the settings leave an ignored SIGHUP alone, on purpose).
            preexec_fn=_terminal_signals,
        )
    try:

        def banner_printed() -> bool:
            assert process.poll() is None, f"runserver exited:\n{log_path.read_text(errors='replace')}"
            return "Log in at" in log_path.read_text(errors="replace")

        _poll(banner_printed, STARTUP_TIMEOUT, "runserver's banner")
        banner = log_path.read_text(errors="replace")
        match = re.search(r"^Sessions: (?:Redis|Valkey) [\d.]+ at unix://(\S+?)\?db=1", banner, re.MULTILINE)
        assert match, banner
        socket_path = Path(match.group(1))
        with redis.Redis(unix_socket_path=str(socket_path)) as client:
            server_pid = int(client.info("server")["process_id"])
        assert f"pid {server_pid}" in banner
        assert _running(server_pid) and socket_path.parent.is_dir()
        yield Demo(process, port, socket_path, server_pid, banner)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [
        pytest.param(signal.SIGHUP, True, id="SIGHUP-terminal-closed"),
        pytest.param(signal.SIGINT, True, id="SIGINT-ctrl-c"),
        pytest.param(signal.SIGTERM, False, id="SIGTERM-kill-pid"),
        pytest.param(signal.SIGKILL, True, id="SIGKILL-watchdog"),
    ],
)
def test_signal_stops_the_embedded_server(demo: Demo, signum: signal.Signals, whole_group: bool) -> None:
    """A closed terminal and Ctrl-C signal runserver's whole process group, ``kill`` only its pid;
    after SIGKILL (no handler can run) the watchdog beside the server cleans up."""
    assert _listening(demo.port)
    if whole_group:
        os.killpg(demo.process.pid, signum)
    else:
        demo.process.send_signal(signum)
    returncode = demo.process.wait(SHUTDOWN_TIMEOUT)
    if signum == signal.SIGKILL:
        assert returncode == -signal.SIGKILL
    else:
        # runserver exited (atexit ran, stopping the server) rather than dying of
        # the signal, which would leave the work to the watchdog.
        assert returncode >= 0, returncode
    _poll(lambda: not _running(demo.server_pid), SHUTDOWN_TIMEOUT, f"server pid {demo.server_pid} to end")
    _poll(lambda: not demo.socket_path.parent.exists(), SHUTDOWN_TIMEOUT, "the server's temp dir to go")
    _poll(lambda: not _listening(demo.port), SHUTDOWN_TIMEOUT, "runserver's port to close")
