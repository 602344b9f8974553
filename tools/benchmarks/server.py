"""Session engines behind a real server: gunicorn (2 sync workers) on one throwaway redis-server.

    python -m tools.benchmarks.server [--seconds S] [--connections C] [--rounds R] [--asgi]

With ``--asgi``: uvicorn workers (2, under gunicorn) serving async views instead, and a fourth
row, ``ours-hash-hop``: our engine as it was before native async (every async
session call, and the middleware's save, hop to a worker thread).

With ``--topology cluster`` (a Redis Cluster of 3 primaries with a replica each) or
``--topology sentinel`` (1 primary, 2 replicas, 3 sentinels), ``--asgi`` only: our engine
natively and through the hop, which is then the baseline (Django's cache engine has no
Redis Cluster).

Each round starts gunicorn once per engine (engine order rotated round by
round), creates a logged-in-like session via /login/, then drives /read/
(load only) and /write/ (load + save) with that session's cookie for S seconds
each, after a warm-up, with wrk (or a small built-in Python generator if wrk is
missing). The load generator shares the machine's cores with gunicorn and
Redis; every engine gets the same treatment. Figures: median over rounds.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import django_redis
import gunicorn
import hiredis
import redis

from cache_sessions.testing import RedisServer, free_port, stop_process

WSGI_ENGINES = ("ours-hash", "ours-string", "django-cache")  # as in server_site (importing it configures Django)
ASGI_ENGINES = ("ours-hash", "ours-string", "ours-hash-hop", "django-cache")
TOPOLOGY_ENGINES = ("ours-hash", "ours-string", "ours-hash-hop")  # --topology cluster|sentinel (ASGI)
ENGINES = WSGI_ENGINES
VIEWS = ("read", "write")
DBS = {"ours-hash": 1, "ours-string": 2, "django-cache": 3, "ours-hash-hop": 4}
KEY_TYPES = {"ours-hash": b"hash", "ours-string": b"string", "django-cache": b"string", "ours-hash-hop": b"hash"}
BASELINE, WARMUP_SECONDS = "django-cache", 2.0
ROOT = Path(__file__).resolve().parents[2]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx responses plus socket errors
    requests: int
    cpu_us: float = 0.0  # CPU time of the gunicorn workers per request

    FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_us")


LoadGenerator = Callable[[str, str, float, int], Load]  # (url, cookie, seconds, connections)
Results = dict[tuple[str, str], list[Load]]  # (engine, view): one Load per round


def wrk(url: str, cookie: str, seconds: float, connections: int) -> Load:
    args = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    args += ["-H", f"Cookie: {cookie}", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout

    def found(pattern: str, default: str | None = None) -> list[str]:
        match = re.search(pattern, out, re.M)
        if match is None and default is None:
            raise RuntimeError(f"Unexpected wrk output (no {pattern!r}):\n{out}")
        return list(match.groups()) if match else [default or ""]

    def latency(percent: str) -> float:
        number, unit = found(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        return float(number) * UNITS[unit]

    bad = int(found(r"Non-2xx or 3xx responses:\s+(\d+)", "0")[0])
    bad += sum(map(int, found(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", "0")))
    rps, requests = float(found(r"Requests/sec:\s+([\d.]+)")[0]), int(found(r"(\d+) requests in")[0])
    return Load(rps, latency("50"), latency("99"), bad, requests)


def python_load(url: str, cookie: str, seconds: float, connections: int) -> Load:
    """The fallback: one thread per connection, http.client (it reconnects when the server closes)."""
    parsed = urllib.parse.urlsplit(url)
    latencies: list[float] = []  # shared by the threads: list.append is atomic
    failed: list[int] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
        while (start := time.perf_counter()) < deadline:
            try:
                conn.request("GET", parsed.path, headers={"Cookie": cookie})
                (response := conn.getresponse()).read()
                ok = 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            latencies.append(time.perf_counter() - start)
            failed.extend(() if ok else (1,))

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rps, n = len(latencies) / (time.perf_counter() - began), len(latencies)
    latencies.sort()
    p50, p99 = (latencies[min(n - 1, int(n * q))] * 1e3 if n else 0.0 for q in (0.50, 0.99))
    return Load(rps, p50, p99, len(failed), n)


def get(port: int, path: str, cookie: str = "") -> tuple[int, str, str]:
    """``(status, body, Set-Cookie)`` of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, response.read().decode(), response.getheader("Set-Cookie") or ""
    finally:
        conn.close()


class Gunicorn:
    """``gunicorn -w 2`` (or, ASGI, ``uvicorn --workers 2``) serving ``server_site`` for one
    engine; its output goes to a temp file."""

    def __init__(self, engine: str, redis_url: str, asgi: bool = False, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        fd, log = tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")
        self.log = Path(log)
        env = {**os.environ, **(env or {}), "BENCH_ENGINE": engine, "REDIS_URL": redis_url}
        env["BENCH_ASGI"] = "1" if asgi else ""
        env.pop("DJANGO_SETTINGS_MODULE", None)
        # ASGI: uvicorn's workers under gunicorn (uvicorn's own --workers mode answered
        # every request ~44 ms late on this machine, even for a bare ASGI app).
        worker = "uvicorn.workers.UvicornWorker" if asgi else "sync"
        args = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", worker, "-b", f"127.0.0.1:{self.port}"]
        args += ["--log-level", "warning", "tools.benchmarks.server_site:application"]
        with os.fdopen(fd, "wb") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        atexit.register(self.stop)

    def wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if get(self.port, "/read/")[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer on port {self.port}:\n{self.stop()}")
            time.sleep(0.1)

    def worker_cpu(self) -> float:
        """CPU seconds used so far by the workers (children of the master; Linux /proc, else 0)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:  # after "(comm)": state, ppid, ... utime and stime are the 12th and 13th
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12]) if int(fields[1]) == self.process.pid else 0
        return total / os.sysconf("SC_CLK_TCK") if total else 0.0

    def stop(self) -> str:
        """Stop gunicorn (the master stops its workers); the tail of its output."""
        stop_process(self.process, 15)
        output = self.log.read_text(errors="replace").strip().splitlines()[-20:] if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return "\n".join(output)


def login(port: int) -> str:
    """A new session's ``sessionid=<key>`` cookie, checked against the key /login/ returns."""
    status, key, set_cookie = get(port, "/login/")
    cookie = set_cookie.split(";", 1)[0]
    if status != 200 or cookie != f"sessionid={key}":
        raise RuntimeError(f"/login/ failed: {status} {key!r}, Set-Cookie {set_cookie!r}")
    return cookie


def check(engine: str, port: int, cookie: str, admin: redis.Redis | None, bad: int) -> list[str]:
    """Problems seen after an engine's runs: failed responses, an empty session, a wrong kind
    of key (where the engine has a DB of its own: ``admin``)."""
    problems = [f"{engine}: {bad} non-2xx responses or socket errors"] if bad else []
    status, body, _ = get(port, "/read/", cookie)
    if status != 200 or not body.isdigit() or int(body) <= 0:
        problems.append(f"{engine}: /read/ after /write/ gave {status} {body[:80]!r}, not a count > 0")
    if admin is None:
        return problems
    key = admin.randomkey()
    if key is None or admin.type(key) != KEY_TYPES[engine]:
        problems.append(f"{engine}: DB {DBS[engine]} holds {key!r} of type {key and admin.type(key)!r}")
    return problems


class Topology:
    """Where the engines' sessions live: one server (the default), a Redis Cluster or a Sentinel
    service, started here; what each engine's site is told, and a client to check its keys."""

    def __init__(self, kind: str) -> None:
        from tests.support.clusters import Cluster  # the test harness: only this mode needs it
        from tests.support.sentinels import SentinelGroup

        self.kind = kind
        if kind == "cluster":
            self.cluster = Cluster(primaries=3, replicas=1, **LISTPACK).start()
            self.servers = self.cluster.servers
        elif kind == "sentinel":
            self.group = SentinelGroup()
            for server in self.group.data:
                redis.Redis(port=server.port).config_set(*next(iter(LISTPACK.items())))
            self.servers = self.group.data + self.group.sentinels
        else:
            self.server = RedisServer(config=LISTPACK).start()
            self.servers = [self.server]

    def site(self, engine: str) -> tuple[str, dict[str, str]]:
        """``REDIS_URL`` and the other environment of ``engine``'s site."""
        if self.kind == "cluster":
            self.cluster.flush()  # one keyspace (DB 0) for every engine: each starts empty
            return ",".join(self.cluster.urls), {"BENCH_TOPOLOGY": "cluster"}
        if self.kind == "sentinel":
            addresses = ",".join(f"{host}:{port}" for host, port in self.group.addresses)
            return self.group.location(DBS[engine]), {"BENCH_SENTINELS": addresses}
        return f"{self.server.url}/{DBS[engine]}", {}

    def admin(self, engine: str) -> redis.Redis | None:
        if self.kind == "cluster":
            return None
        port = self.group.primary().port if self.kind == "sentinel" else self.server.port
        return redis.Redis(host="127.0.0.1", port=port, db=DBS[engine])

    def control(self) -> redis.Redis:
        """A client of a data server (its version)."""
        return redis.Redis(host="127.0.0.1", port=self.servers[0].port)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


LISTPACK = {"hash-max-ziplist-value": "256"}  # the name Redis 6.2 knows too


def run_engine(
    engine: str,
    topology: Topology,
    seconds: float,
    connections: int,
    load: LoadGenerator,
    results: Results,
    asgi: bool = False,
) -> list[str]:
    """Serve ``engine``, log in, warm up and drive each view; append to ``results``; return problems seen."""
    redis_url, env = topology.site(engine)
    site = Gunicorn(engine, redis_url, asgi=asgi, env=env)
    try:
        site.wait()
        cookie, bad = login(site.port), 0
        for view in VIEWS:
            url = f"http://127.0.0.1:{site.port}/{view}/"
            bad += load(url, cookie, WARMUP_SECONDS, connections).bad
            cpu = site.worker_cpu()
            results[(engine, view)].append(run := load(url, cookie, seconds, connections))
            run.cpu_us = (site.worker_cpu() - cpu) / max(run.requests, 1) * 1e6
            bad += run.bad
        admin = topology.admin(engine)
        try:
            return check(engine, site.port, cookie, admin, bad)
        finally:
            if admin is not None:
                admin.close()
    finally:
        if output := site.stop():
            print(f"gunicorn output ({engine}):\n{output}", file=sys.stderr)


def load_average() -> str:
    return "{:.2f}, {:.2f}, {:.2f} (1, 5, 15 min; as `uptime`)".format(*os.getloadavg())


def versions(server: Any, control: redis.Redis, wrk_version: str) -> str:
    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, django-redis {django_redis.__version__}, "
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__}, gunicorn {gunicorn.__version__}, "
        f"{wrk_version}, Redis {control.info('server')['redis_version']} ({server.binary}), {os.cpu_count()} CPUs"
    )


def report(results: Results, rounds: int) -> bool:
    """Print the table; ``True`` if ours (both modes) beats django-cache on every view."""
    line = "  {:<13} {:<6} {:>8} {:>8} {:>8} {:>9}  {:<20} {:>10} {:>8}  {}"
    ratio_name = "xdj-cache" if BASELINE == "django-cache" else "xhop"
    print(line.format("engine", "view", "req/s", "p50 ms", "p99 ms", ratio_name, "req/s per round",
                      "CPU µs/req", "xCPU", "ahead"))  # fmt: skip
    ahead = True
    for view in VIEWS:
        base = results[(BASELINE, view)]
        for engine in ENGINES:
            runs = results[(engine, view)]
            ratio = statistics.median(run.rps / b.rps for run, b in zip(runs, base, strict=True))
            cpu = statistics.median(run.cpu_us / max(b.cpu_us, 1e-9) for run, b in zip(runs, base, strict=True))
            mark = "" if engine == BASELINE else "✓" if ratio > 1 else "✗"
            ahead = ahead and mark != "✗"
            rps, p50, p99, cpu_us = (statistics.median(getattr(r, f) for r in runs) for f in Load.FIGURES)
            per_round = " ".join(f"{run.rps:.0f}" for run in runs)
            print(line.format(engine, view, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{ratio:.3f}", per_round,
                              f"{cpu_us:.0f}", f"{cpu:.3f}", mark))  # fmt: skip
    print(
        f"\n{ratio_name}: median over the {rounds} rounds of the engine's req/s / {BASELINE}'s in the same round. "
        "xCPU: the same for the CPU time\nof the gunicorn workers per request (lower is better; less disturbed by "
        "other load on the machine than req/s). Other columns: medians."
    )
    return ahead


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per engine, view and round (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="each round runs every engine once (default 3)")
    parser.add_argument("--asgi", action="store_true", help="uvicorn workers, async views (adds ours-hash-hop)")
    parser.add_argument("--topology", choices=("one", "cluster", "sentinel"), default="one")
    args = parser.parse_args(argv)
    global ENGINES, BASELINE
    ENGINES = ASGI_ENGINES if args.asgi else WSGI_ENGINES
    if args.topology != "one":
        if not args.asgi:
            parser.error("--topology cluster or sentinel compares native async with the hop: add --asgi")
        ENGINES, BASELINE = TOPOLOGY_ENGINES, "ours-hash-hop"
    if shutil.which("wrk"):
        load, wrk_version = wrk, subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    else:
        missing = "wrk not found: install it (Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`)"
        print(f"{missing}. Falling back to a Python load generator, slower and itself CPU-hungry.\n", file=sys.stderr)
        load, wrk_version = python_load, "no wrk: built-in Python load generator"
    print(f"load average at start: {load_average()}")
    topology = Topology(args.topology)
    try:
        control = topology.control()
        print(versions(topology.servers[0], control, wrk_version) + f"; topology: {args.topology}")
        served = "gunicorn -w 2 -k uvicorn.workers.UvicornWorker, async views" if args.asgi else "gunicorn -w 2 (sync)"
        print(
            f"{served}, {args.connections} connections, {args.rounds} rounds x "
            f"({WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s) per engine and view\n"
        )
        results: Results = {(e, v): [] for e in ENGINES for v in VIEWS}
        problems: list[str] = []
        for number in range(args.rounds):
            order = ENGINES[number % len(ENGINES) :] + ENGINES[: number % len(ENGINES)]
            print(f"round {number + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr, flush=True)
            for engine in order:
                problems += run_engine(engine, topology, args.seconds, args.connections, load, results, args.asgi)
        ahead = report(results, args.rounds)
        print(f"goal (ours, both modes, ahead of {BASELINE} on both views): {'met' if ahead else 'MISSED'}")
        print("correctness: " + ("ok (every run 2xx, /read/ > 0 after /write/)" if not problems else "FAILED"))
        for problem in problems:
            print(f"  {problem}")
        print(f"load average at end: {load_average()}")
        return 1 if problems else 0
    finally:
        topology.stop()


if __name__ == "__main__":
    sys.exit(main())
