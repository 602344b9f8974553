"""CPU of encoding and decoding a session, no Redis: this checkout vs a git revision, side by side.

    python -m tools.benchmarks.codec_speed [--compare REV] [--rounds N] [--compress LIB]

Each round times every (codec, payload, operation) cell in a shuffled order
(``time.process_time``, gc off, a fixed number of calls); the table gives the
median µs per call over the rounds, the per-round ratio new/REV (median and
min-max), and pickle's ``loads``/``dumps`` of the same dict as a yardstick.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import pickle
import random
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from tools.benchmarks.speed import PAYLOADS, export_revision, make_payloads, package_name

CALLS = {"small": 4000, "medium": 1000, "large": 150}


def cpu_us(function: Callable[[], Any], calls: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for _ in range(calls):
            function()
        return (time.process_time() - start) / calls * 1e6
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", metavar="REV", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compress", default="snappy", help="COMPRESS_LIB (default snappy)")
    args = parser.parse_args()
    exported = export_revision(args.compare)
    try:
        from cache_sessions.format.codec import Codec

        Before = importlib.import_module(f"{package_name(args.compare)}.codec").Codec
        codecs = {"new": Codec(args.compress), args.compare: Before(args.compress)}
        payloads = make_payloads()
        cells: dict[tuple[str, str, str], Callable[[], Any]] = {}
        for payload in PAYLOADS:
            session = payloads[payload]
            stored = codecs["new"].encode(session, expires_at=2_000_000_000)
            assert codecs[args.compare].encode(session, expires_at=2_000_000_000) == stored, "different bytes"
            for name, codec in codecs.items():
                cells[(name, payload, "encode")] = lambda c=codec, s=session: c.encode(s, expires_at=2_000_000_000)
                cells[(name, payload, "decode")] = lambda c=codec, d=stored: c.decode(d)
            pickled = pickle.dumps(session, pickle.HIGHEST_PROTOCOL)
            cells[("pickle", payload, "encode")] = lambda s=session: pickle.dumps(s, pickle.HIGHEST_PROTOCOL)
            cells[("pickle", payload, "decode")] = lambda p=pickled: pickle.loads(p)
        times: dict[tuple[str, str, str], list[float]] = {cell: [] for cell in cells}
        rng = random.Random(12)
        for _ in range(args.rounds):
            for cell in rng.sample(list(cells), len(cells)):
                times[cell].append(cpu_us(cells[cell], CALLS[cell[1]]))
        rev = args.compare
        print(f"µs of CPU per call, median of {args.rounds} rounds; new/{rev}: per-round ratio, median [min-max]")
        print(f"{'payload':<8} {'operation':<9} {rev:>10} {'new':>10} {'new/' + rev:>18} {'pickle':>10}")
        for payload in PAYLOADS:
            for operation in ("encode", "decode"):
                new, old = times[("new", payload, operation)], times[(args.compare, payload, operation)]
                ratios = [a / b for a, b in zip(new, old, strict=True)]
                print(
                    f"{payload:<8} {operation:<9} {statistics.median(old):>10.2f} {statistics.median(new):>10.2f} "
                    f"{statistics.median(ratios):>6.2f} [{min(ratios):.2f}-{max(ratios):.2f}] "
                    f"{statistics.median(times[('pickle', payload, operation)]):>10.2f}"
                )
    finally:
        shutil.rmtree(exported, ignore_errors=True)


if __name__ == "__main__":
    main()
