"""``RedisServer``: a throwaway server on a free port or a unix socket, in a temp dir of its own.

Each server keeps nothing on disk. ``stop()`` (also run at exit) stops it and
removes the dir. A watchdog process started beside it does the same if the
process that started the server dies without running ``stop()`` (SIGKILL, a
signal with no handler): it waits on a pipe that only the owner holds open,
and the kernel closes that pipe however the owner ends.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .binaries import find_redis_server, server_version


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


PORT_ATTEMPTS = 5


def _bulk_reply(sock: socket.socket) -> bytes | None:
    """A bulk string reply read whole (INFO's); None for anything else (``-LOADING``, ``-NOAUTH``)."""
    data = b""
    while len(data) < 1 << 20:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        header, found, rest = data.partition(b"\r\n")
        if not found:
            continue
        if not header.startswith(b"$"):
            return None
        if len(rest) >= int(header[1:]):
            return rest
    return None


class PortTaken(RuntimeError):
    """The server could not bind its port (or its cluster bus port): someone took it first."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Run with ``python -I -S -c`` beside each server, in a session of its own.
# Its stdin is a pipe whose only writer is the process that started the
# server; end of file means that process is gone (``stop()`` ends the
# watchdog first, so it never acts after a normal stop). Then: SIGTERM to the
# server, SIGKILL if it has not ended 5 s later, and remove the temp dir. On
# Linux a pidfd names the server (no PID reuse) and says when it has ended,
# even while nobody has reaped it yet; elsewhere the PID is polled.
_WATCHDOG = """
import os, select, shutil, signal, sys, time
pid, directory = int(sys.argv[1]), sys.argv[2]
try:
    handle = os.pidfd_open(pid)
except (AttributeError, OSError):
    handle = None
sys.stdin.buffer.read()

def send(signum):
    try:
        if handle is None:
            os.kill(pid, signum)
        else:
            signal.pidfd_send_signal(handle, signum)
    except ProcessLookupError:
        pass

def ended(timeout):
    if handle is not None:
        return bool(select.select([handle], [], [], timeout)[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False

send(signal.SIGTERM)
if not ended(5):
    send(signal.SIGKILL)
shutil.rmtree(directory, ignore_errors=True)
"""


class RedisServer:
    """``RedisServer(unix_socket=True).start()``; ``.url``; ``.stop()``.

    ``binary`` is a ``redis-server`` or ``valkey-server`` (default:
    ``find_redis_server()``); ``config`` maps directive names to values,
    passed as ``--name value``. With ``sentinel`` (the lines of a Sentinel
    configuration, e.g. ``["sentinel monitor mymaster 127.0.0.1 6379 2"]``)
    the same binary runs as a sentinel (``--sentinel``), which needs a
    configuration file it can rewrite: it is written in the temp dir.
    """

    def __init__(
        self,
        *,
        unix_socket: bool = False,
        binary: str | None = None,
        config: dict[str, str] | None = None,
        sentinel: list[str] | None = None,
    ):
        self.binary = binary or find_redis_server()
        self.unix_socket = unix_socket
        self.config = config or {}
        self.sentinel = sentinel
        self.dir = Path(tempfile.mkdtemp(prefix="cache-sessions-redis-"))
        self.port = 0 if unix_socket else free_port()
        # Where a new port comes from if the first start finds this one taken (another process
        # bound it between the choice and the start); a port that has served once is kept.
        self.choose_port: Callable[[], int] | None = None if unix_socket else free_port
        self.socket_path = self.dir / "redis.sock" if unix_socket else None
        self.process: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket_path:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}"

    def version(self) -> tuple[int, ...]:
        """The server's version, e.g. ``(7, 0, 15)``; Valkey's own number for valkey-server."""
        return server_version(self.binary)[1]

    def family(self) -> str:
        """``"redis"`` or ``"valkey"``."""
        return server_version(self.binary)[0]

    def __str__(self) -> str:
        return f"{self.family().capitalize()} {'.'.join(map(str, self.version()))} at {self.url}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._start(timeout)
            except PortTaken:
                if self.choose_port is None or attempt == PORT_ATTEMPTS - 1:
                    self.stop()
                    raise
                self._end_processes()
                self.port = self.choose_port()
                continue
            self.choose_port = None  # restarts keep the port the others know
            return self
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> None:
        args = [self.binary]
        if self.sentinel is not None:
            conf = self.dir / "sentinel.conf"
            if not conf.exists():  # a restarted sentinel keeps what it has learnt
                conf.write_text("".join(f"{line}\n" for line in self.sentinel))
            args += [str(conf), "--sentinel"]
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        if self.socket_path:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        # A session of its own: a Ctrl-C or hangup meant for the owner's
        # terminal does not reach the server; the owner stops it in order.
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        atexit.register(self.stop)
        if sys.executable:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(self.process.pid), str(self.dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_path = self.dir / "redis.log"
                log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                if self.process.poll() is not None and "Address already in use" in log:
                    log_path.unlink(missing_ok=True)  # the next attempt's log alone
                    raise PortTaken(f"{self.binary} did not start ({args}):\n{log}")
                self.stop()
                raise RuntimeError(f"{self.binary} did not start ({args}):\n{log}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            with sock:
                sock.sendall(b"INFO server\r\n")
                reply = _bulk_reply(sock)
        except OSError:
            return False
        # This server, not another that holds the port (another test run's, say).
        return reply is not None and self.process is not None and b"process_id:%d\r\n" % self.process.pid in reply

    def stop(self) -> None:
        self._end_processes()
        shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def _end_processes(self) -> None:
        if self.watchdog is not None:
            # First, so that it never signals a server this process has already reaped.
            self.watchdog.kill()
            self.watchdog.wait()
            if self.watchdog.stdin:
                self.watchdog.stdin.close()
            self.watchdog = None
        if self.process is not None:
            stop_process(self.process, 5)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
