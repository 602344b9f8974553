"""What a hostile django-redisession pickle costs the request that meets it: time, peak memory, outcome.

    python -m tools.benchmarks.pickle_bombs [--revision REV] [--timeout S] [--memory-mb MB] [--only NAME]

Each bomb of tests/support/hostile_pickles.py runs in a fresh process, capped at
``--memory-mb`` of address space and killed after ``--timeout`` seconds. The
process does what the migration fallback does with a hash-mode value:
``readable(source._parse_hash, value)``, then the codec's encode of the session
it got (the create that would store it). "peak MB" is how far its peak RSS rose
once the bomb's bytes were built, "cpu s" the CPU of reading and encoding it
(blank when killed), "wall s" the whole process. ``--revision``: the code of
that git revision instead of this checkout's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tests.support import hostile_pickles as bombs

BOMBS: dict[str, Callable[[], bytes]] = {
    "memo doubling, protocol 2, 20 levels": lambda: bombs.memo_doubling(20),
    "memo doubling, protocol 2, 28 levels": lambda: bombs.memo_doubling(28),
    "memo doubling, protocol 4, 28 levels": lambda: bombs.memo_doubling_memoize(28),
    "string doubling, 1 kB x 2**20": lambda: bombs.string_doubling(20),
    "200,000 nested MARK+LIST": lambda: bombs.nested_marks(200_000),
    "200,000 nested APPEND": lambda: bombs.nested_appends(200_000),
    "self-referencing list": lambda: bombs.self_reference(2),
    "self-referencing dict, protocol 4": lambda: bombs.self_reference_dict(4),
    "64 MB uncompressed bytes": lambda: bombs.huge_bytes(64 << 20),
    "500,000 empty lists": lambda: bombs.many_small_items(500_000),
    "60,000 int keys of one hash": lambda: bombs.colliding_int_keys(60_000),
}


def child(name: str, package: str) -> None:
    redisession = importlib.import_module(f"{package}.redisession")
    codec = importlib.import_module(f"{package}.codec")
    sources = importlib.import_module(f"{package}.sources")
    payload = BOMBS[name]()
    value = int(time.time() + 600).to_bytes(4, "big") + b"\x00" + payload  # hash mode: expiry, flag, pickle
    source = redisession.RedisessionSource(None, True, bytes.fromhex, bytes.fromhex, None, "bench")
    print(json.dumps({"ready_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    start = time.process_time()
    try:
        found = sources.readable(source._parse_hash, value)
        if found is None:
            outcome = "no session"
        else:
            codec.Codec("").encode(found.data)
            outcome = "stored"
    except codec.UnencodableSession as exc:
        outcome = f"not moved ({str(exc)[:60]})"
    except BaseException as exc:  # what would reach Django: a 500
        outcome = f"500 ({type(exc).__name__})"
    print(json.dumps({"outcome": outcome, "cpu": time.process_time() - start, "size": len(payload)}))


def _high_water_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(name: str, package: str, path: str, timeout: float, memory_mb: int) -> dict[str, object]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    command = [sys.executable, "-m", "tools.benchmarks.pickle_bombs", "--child", name, "--package", package]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, os.getcwd()) if p)}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=limit, env=env)
    killed, peak_kb = "", 0
    while True:
        pid, _, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            peak_kb = max(peak_kb, usage.ru_maxrss)
            break
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        if time.monotonic() - started > timeout and not killed:
            os.kill(process.pid, signal.SIGKILL)
            killed = f"killed after {timeout:.0f} s"
        time.sleep(0.02)
    process.returncode = -1  # reaped above
    wall = time.monotonic() - started
    assert process.stdout is not None
    out = process.stdout.read()
    lines = [json.loads(line) for line in out.decode().strip().splitlines()]
    ready_kb = lines[0]["ready_kb"] if lines else 0
    result: dict[str, object] = {"wall": wall, "peak_mb": (peak_kb - ready_kb) / 1024}
    if len(lines) > 1:
        result.update(lines[-1])
    else:
        result["outcome"] = killed or f"died (MemoryError or the {memory_mb} MB cap)"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--memory-mb", type=int, default=3000)
    parser.add_argument("--only")
    parser.add_argument("--child")
    parser.add_argument("--package", default="cache_sessions")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.package)
    package, path = "cache_sessions", ""
    if args.revision:
        from tools.benchmarks.speed import export_revision, package_name

        path, package = str(export_revision(args.revision)), package_name(args.revision)
    print(f"{'bomb':40} {'bytes':>10} {'wall s':>7} {'cpu s':>7} {'peak MB':>8}  outcome", flush=True)
    for name in BOMBS:
        if args.only and args.only not in name:
            continue
        result = run(name, package, path, args.timeout, args.memory_mb)
        size = result.get("size", len(BOMBS[name]()))
        cpu = result.get("cpu")
        cpu_text = f"{cpu:7.2f}" if isinstance(cpu, float) else f"{'-':>7}"
        print(
            f"{name:40} {size:>10,} {result['wall']:7.2f} {cpu_text} {result['peak_mb']:8.0f}  {result['outcome']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
