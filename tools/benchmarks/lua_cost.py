"""What a hash-mode write costs Redis, piece by piece (INFO commandstats, no Python in the figures).

    python -m tools.benchmarks.lua_cost [--ops N] [--rounds R]

On one throwaway server (the same one the other benchmarks start), each probe
is a command sent N times; its ``usec_per_call`` (INFO commandstats, reset
before each probe) is what Redis spent inside the command. Probes are
interleaved round by round; the figures are medians over rounds. They split
the WRITE script's cost (``cache_sessions/lua.py``) into: a script call that
does nothing, defining the shared prelude's functions, each ``redis.call``
from Lua, the commands' own work, and the size of the arguments; and show
what the same three inner calls cost as a Redis Function (``FCALL``, 7.0+:
the library is loaded once, nothing is defined per call).
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

import redis

from cache_sessions.storage import lua
from cache_sessions.testing import RedisServer

TTL = 1209600
FIELD = b"f" * 12
FUNCTIONS = """#!lua name=probe
redis.register_function('three', function(keys, args)
  redis.call('HGET', keys[1], args[1])
  redis.call('HSET', keys[1], args[1], args[2])
  redis.call('EXPIRE', keys[1], args[3], 'GT')
  return 1
end)
redis.register_function('nothing', function(keys, args) return 1 end)
"""


def value(size: int) -> bytes:
    """A hash-mode value: header (format 2, expiry flag, no codec), expiry a day ahead, payload."""
    return bytes((0x28,)) + struct.pack(">I", int(time.time()) + 86400) + b"x" * (size - 5)


def probes(r: redis.Redis) -> dict[str, Callable[[int], Any]]:
    scripts = {
        "empty": "return 1",
        "prelude": lua.PRELUDE + "return 1",
        "1 call": "redis.call('HGET', KEYS[1], ARGV[1]) return 1",
        "3 calls": "redis.call('HGET', KEYS[1], ARGV[1]) redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
        "redis.call('EXPIRE', KEYS[1], ARGV[3], 'GT') return 1",
    }
    sha = {name: r.script_load(source) for name, source in scripts.items()}
    write = r.script_load(lua.WRITE.source)
    small, big = value(85), value(6440)
    pointer = bytes((0x2E,)) + small[1:5]
    has_functions = int(r.info("server")["redis_version"].split(".")[0]) >= 7
    if has_functions:
        r.function_load(FUNCTIONS, replace=True)

    def bucket(n: int) -> bytes:
        return b"probe:h{%x}" % (n % 1024)

    def run_write(v: bytes, overflow: bytes, sweep: int) -> Callable[[int], Any]:
        # update mode (0) of a live field: HGET, HSET, [SET], EXPIRE GT, as a session save does
        return lambda n: r.evalsha(
            write, 2, bucket(n), bucket(n) + b":" + FIELD, FIELD, v, overflow, TTL, 0, sweep, int(time.time())
        )

    found: dict[str, Callable[[int], Any]] = {
        "HGET": lambda n: r.hget(bucket(n), FIELD),
        "HSET (85 B)": lambda n: r.hset(bucket(n), FIELD, small),
        "EXPIRE GT": lambda n: r.expire(bucket(n), TTL, gt=True),
        "EVALSHA: return 1": lambda n: r.evalsha(sha["empty"], 1, bucket(n)),
        "EVALSHA: prelude, return 1": lambda n: r.evalsha(sha["prelude"], 1, bucket(n)),
        "EVALSHA: HGET": lambda n: r.evalsha(sha["1 call"], 1, bucket(n), FIELD),
        "EVALSHA: HGET, HSET, EXPIRE GT": lambda n: r.evalsha(sha["3 calls"], 1, bucket(n), FIELD, small, TTL),
        "WRITE (update, 85 B)": run_write(small, b"", 0),
        "WRITE (update, 85 B, sweep 64)": run_write(small, b"", 64),
        "WRITE (update, 6.4 KB overflow)": run_write(pointer, big, 0),
    }
    if has_functions:
        found["FCALL: return 1"] = lambda n: r.fcall("nothing", 1, bucket(n))
        found["FCALL: HGET, HSET, EXPIRE GT"] = lambda n: r.fcall("three", 1, bucket(n), FIELD, small, TTL)
    return found


def measure(r: redis.Redis, probe: Callable[[int], Any], ops: int) -> tuple[float, dict[str, float]]:
    """(µs per call of the probe's own command, {inner command: calls per probe call})."""
    r.config_resetstat()
    for n in range(ops):
        probe(n)
    stats = {name.removeprefix("cmdstat_"): s for name, s in r.info("commandstats").items()}
    stats = {name: s for name, s in stats.items() if not name.startswith(("config", "info"))}
    top = max(stats, key=lambda name: stats[name]["usec"])  # the probe's command holds every inner call's time
    return stats[top]["usec"] / ops, {name: s["calls"] / ops for name, s in stats.items() if name != top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=5000, help="calls per probe and round (default 5000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with RedisServer(config={"hash-max-listpack-value": "256"}) as server:
        r = redis.Redis(port=server.port)
        version = r.info("server")["redis_version"]
        print(f"Redis server {version} ({server.binary}); {args.ops} calls per probe and round")
        found = probes(r)
        for n in range(1024):  # every bucket holds the field, with a TTL, before anything is timed
            r.hset(b"probe:h{%x}" % n, FIELD, value(85))
            r.expire(b"probe:h{%x}" % n, TTL)
        for probe in found.values():
            probe(0)
        results: dict[str, list[float]] = {name: [] for name in found}
        inner: dict[str, dict[str, float]] = {}
        rng = random.Random(3)
        for _ in range(args.rounds):
            for name in rng.sample(list(found), len(found)):
                usec, calls = measure(r, found[name], args.ops)
                results[name].append(usec)
                inner[name] = calls
        print(f"\n{'probe':<34} {'µs per call':>11} {'min-max':>11}  inner calls per call")
        for name, figures in results.items():
            calls = " ".join(f"{k} {v:.2f}" for k, v in sorted(inner[name].items()))
            print(f"{name:<34} {statistics.median(figures):>11.2f} {min(figures):>5.2f}-{max(figures):<5.2f}  {calls}")


if __name__ == "__main__":
    main()
