"""A TCP proxy in front of a real Redis server that misbehaves on demand.

::

    proxy = FaultProxy(server.port)   # listens on a free loopback port, forwards to the server
    proxy.url                         # redis://127.0.0.1:<proxy port>
    proxy.drop_reply("SET")           # the next SET runs on the server, then its connection is
                                      # closed before the client hears the reply
    proxy.delay_reply("SET", 1.0)     # the next SET runs at once; its reply comes 1 s late
    proxy.hang_at("SET")              # the next SET never reaches the server, nor does anything
                                      # after it on that connection; nothing is answered
    proxy.cut_at("SET")               # the next SET never reaches the server: its connection is
                                      # closed at once (with what else it sent in the same write)
    proxy.blackhole()                 # accepts connections, never answers (commands never run)
    proxy.refuse()                    # closes the listener and every connection: "connection refused"
    proxy.pass_through()              # back to normal (listening again on the same port)
    proxy.close()

The proxy reads just enough RESP to find where each request and each reply
ends: redis-py sends each command as an array of bulk strings (a pipeline
sends several at once) and the server answers them in order, so a fault
armed for "the next SET" hits exactly that command's reply. Memory per
connection is bounded by the largest single request or reply in flight.
Every thread is a daemon thread; ``close()`` stops them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Matcher = Callable[[list[bytes]], bool]
READ_SIZE = 65536


def resp_end(buf: bytes, pos: int = 0) -> int | None:
    """Where the RESP value (RESP2 or RESP3) starting at ``buf[pos]`` ends, or None if it is incomplete."""
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    kind = buf[pos : pos + 1]
    if kind in (b"$", b"=", b"!"):  # bulk string, verbatim string, bulk error: a length, then the bytes
        length = int(buf[pos + 1 : line_end])
        end = line_end + 2 if length < 0 else line_end + 2 + length + 2
        return end if end <= len(buf) else None
    if kind in (b"*", b"~", b">", b"%", b"|"):  # array, set, push; map and attribute hold pairs
        count = int(buf[pos + 1 : line_end]) * (2 if kind in (b"%", b"|") else 1)
        end: int | None = line_end + 2
        for _ in range(max(count, 0)):
            end = resp_end(buf, end)
            if end is None:
                return None
        return end
    return line_end + 2  # one line: simple string, error, integer, null, double...; or an inline command


def request_args(request: bytes) -> list[bytes]:
    """The arguments of one request: an array of bulk strings (or an inline command)."""
    if not request.startswith(b"*"):
        return request.split()
    args, pos = [], request.index(b"\r\n") + 2
    while pos < len(request):
        line_end = request.index(b"\r\n", pos)
        start = line_end + 2
        pos = start + int(request[pos + 1 : line_end]) + 2
        args.append(request[start : pos - 2])
    return args


def split_messages(buf: bytes) -> tuple[list[bytes], bytes]:
    """``(complete messages, incomplete rest)`` of a byte stream."""
    messages, pos = [], 0
    while pos < len(buf):
        end = resp_end(buf, pos)
        if end is None:
            break
        messages.append(buf[pos:end])
        pos = end
    return messages, buf[pos:]


def command(name: str) -> Matcher:
    """A matcher for the command ``name`` (case-insensitive)."""
    wanted = name.upper().encode()
    return lambda args: bool(args) and args[0].upper() == wanted


@dataclass
class Fault:
    matches: Matcher
    delay: float | None  # None: drop the reply and close the connection
    hang: bool = False  # the command is swallowed, and the connection hangs from it on
    cut: bool = False  # the command is swallowed, and the connection closed


class Link:
    """One client connection and its connection to the server, with a thread per direction."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.pending: deque[Fault | None] = deque()  # one entry per request sent, in order
        self.closed = threading.Event()
        self.hung = False
        for pump in (self.requests, self.replies):
            threading.Thread(target=pump, daemon=True).start()

    def requests(self) -> None:
        buf = b""
        while data := self.recv(self.client):
            messages, buf = split_messages(buf + data)
            forward = []
            for message in messages:
                if self.proxy.blackholed or self.hung:
                    continue  # swallowed: never reaches the server
                fault = self.proxy.take_fault(request_args(message))
                if fault is not None and fault.cut:
                    self.proxy.cut += 1
                    self.close()
                    return
                if fault is not None and fault.hang:
                    self.hung = True  # and what follows it too: replies must not shift onto it
                    self.proxy.hung += 1
                    continue
                if fault is not None and fault.delay is not None:
                    # Counted here, before the command reaches the server, so the client can never
                    # have its outcome (the reply, or a timeout) before the count shows it.
                    self.proxy.delayed += 1
                self.pending.append(fault)
                forward.append(message)
            if forward and not self.send(self.server, b"".join(forward)):
                break
        self.close()

    def replies(self) -> None:
        buf = b""
        while data := self.recv(self.server):
            messages, buf = split_messages(buf + data)
            out = []
            for message in messages:
                fault = self.pending.popleft() if self.pending else None
                if fault is None:
                    out.append(message)
                    continue
                if fault.delay is None:  # the command ran; its client never hears back
                    self.proxy.dropped += 1
                    self.close()
                    return
                if out and not self.send(self.client, b"".join(out)):
                    break
                out = [message]
                self.closed.wait(fault.delay)
            if out and not self.send(self.client, b"".join(out)):
                break
        self.close()

    @staticmethod
    def recv(sock: socket.socket) -> bytes:
        try:
            return sock.recv(READ_SIZE)
        except OSError:
            return b""

    @staticmethod
    def send(sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.closed.set()
        _close(self.client)
        _close(self.server)
        self.proxy.forget(self)


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.blackholed = False
        self.dropped = 0  # replies dropped so far
        self.delayed = 0  # commands whose reply was (or is being) held back so far
        self.hung = 0  # connections hung so far
        self.cut = 0  # connections cut so far
        self._faults: list[Fault] = []
        self._links: set[Link] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._listen()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    # Faults --------------------------------------------------------------

    def drop_reply(self, matches: str | Matcher) -> None:
        """The next matching command runs on the server; its connection is closed before the reply."""
        self._arm(Fault(command(matches) if isinstance(matches, str) else matches, None))

    def delay_reply(self, matches: str | Matcher, seconds: float) -> None:
        """The next matching command runs at once; its reply is held back ``seconds``."""
        self._arm(Fault(command(matches) if isinstance(matches, str) else matches, seconds))

    def hang_at(self, matches: str | Matcher) -> None:
        """The next matching command never reaches the server, and neither does anything sent
        after it on its connection: the client times out. Other connections work."""
        self._arm(Fault(command(matches) if isinstance(matches, str) else matches, None, hang=True))

    def cut_at(self, matches: str | Matcher) -> None:
        """The next matching command never reaches the server: its connection is closed at once."""
        self._arm(Fault(command(matches) if isinstance(matches, str) else matches, None, cut=True))

    def blackhole(self) -> None:
        """Accept connections and requests, answer nothing (requests never reach the server)."""
        self.blackholed = True

    def refuse(self) -> None:
        """Stop listening and close every connection: clients get "connection refused"."""
        with self._lock:
            listener, self._listener = self._listener, None
            links = list(self._links)
        if listener is not None:
            _close(listener)
        for link in links:
            link.close()

    def pass_through(self) -> None:
        """Forget every fault and listen again (on the same port)."""
        with self._lock:
            self._faults.clear()
        self.blackholed = False
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.refuse()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Plumbing ------------------------------------------------------------

    def _arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take_fault(self, args: list[bytes]) -> Fault | None:
        """The first armed fault ``args`` matches, disarmed; None if none does."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(args):
                    return self._faults.pop(index)
        return None

    def forget(self, link: Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # the server is down: so is the proxy, for this client
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # refused meanwhile
                    _close(client)
                    _close(server)
                    return
                self._links.add(Link(self, client, server))


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() or accept()
    sock.close()
