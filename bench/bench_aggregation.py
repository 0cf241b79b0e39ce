"""Aggregation kernels, Cython against the pure-Python twin, on one core.

    .venv/bin/python bench/bench_aggregation.py [--series 1000 10000 100000]

Series are 80% 64-bit counters and 20% gauges with a retention of 180 slots.
``ingest_column`` folds one collection into state whose history is already
full; ``window_stats`` summarises the full 180-slot history of every series.
Each figure is the median of several runs (``time.perf_counter``).

Targets: at 100k series the Cython ingest is >= 50x the twin and >= 20 M
samples/s.
"""
from __future__ import annotations

import argparse
import math
import operator
import os
import random
import statistics
import sys
import time
from array import array

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent.core import kernels_py  # noqa: E402

CAP = 180
DT = 5.0
WIDTH = kernels_py.STATS_WIDTH


class Workload:
    """Columns of ``n`` series and a full history, filled through ``fill``."""

    def __init__(self, n: int, fill, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.n = n
        self.kinds = array("B", (2 if rnd.random() < 0.8 else 0 for _ in range(n)))
        self.scales = array("d", (rnd.choice((1.0, 8.0, 1e-3)) for _ in range(n)))
        self.value = array("d", (rnd.uniform(0, 100) for _ in range(n)))
        self.inc = array("Q", (rnd.randrange(10**6) for _ in range(n)))
        self.raw = array("Q", (rnd.randrange(2**48) for _ in range(n)))
        self.prev_raw = array("Q", bytes(8 * n))
        self.has_prev = array("B", bytes(n))
        self.hist = array("d", [math.nan]) * (n * CAP)
        self.out_value = array("d", bytes(8 * n))
        self.out_rate = array("d", bytes(8 * n))
        for col in range(CAP):
            self.ingest(fill, self.next_raw(), col)
        self.ts = array("d", (DT * s for s in range(CAP)))
        self.head, self.count = 0, CAP

    def next_raw(self) -> array:
        self.raw = array("Q", map(operator.add, self.raw, self.inc))
        return self.raw

    def ingest(self, mod, raw: array, col: int) -> int:
        return mod.ingest_column(self.kinds, raw, self.value, self.scales, self.prev_raw,
                                 self.has_prev, DT, self.hist, CAP, col,
                                 self.out_value, self.out_rate)


def median_ms(fn, repeat: int) -> float:
    times = []
    for r in range(repeat):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(w: Workload, mod, repeat: int) -> tuple[float, float]:
    raws = [w.next_raw() for _ in range(repeat)]  # made before the clock starts
    ingest_ms = median_ms(lambda r: w.ingest(mod, raws[r], (w.head + r) % CAP), repeat)
    out = array("d", bytes(8 * WIDTH * w.n))
    ws_ms = median_ms(lambda r: mod.window_stats(w.hist, CAP, w.n, w.ts, w.head, w.count,
                                                 -math.inf, out), max(3, repeat // 3))
    return ingest_ms, ws_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the first allowed)")
    args = ap.parse_args()
    try:
        from agent.core import _kernels
    except ImportError as exc:
        print(f"Cython kernels not built ({exc}); run: python setup.py build_ext --inplace")
        return 2
    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})

    print(f"aggregation kernels, retention {CAP} slots, 80% counter64 / 20% gauge, core {cpu}")
    head = (f"{'series':>8}  {'impl':<7} {'ingest ms':>10} {'samples/s':>12} {'speedup':>8}"
            f" {'window_stats ms':>16} {'ws speedup':>10}")
    print(head)
    print("-" * len(head))
    ok = True
    for n in args.series:
        w = Workload(n, _kernels)
        py_ingest, py_ws = bench(w, kernels_py, 5 if n < 100000 else 3)
        cy_ingest, cy_ws = bench(w, _kernels, 51)
        for impl, ing, ws in (("python", py_ingest, py_ws), ("cython", cy_ingest, cy_ws)):
            up, ws_up = (f"{py_ingest / ing:.0f}x", f"{py_ws / ws:.0f}x") if impl == "cython" else ("", "")
            print(f"{n:>8}  {impl:<7} {ing:>10.3f} {n / ing * 1e3:>12,.0f} {up:>8} {ws:>16.2f} {ws_up:>10}")
        if n == 100000:
            ok = py_ingest / cy_ingest >= 50 and n / cy_ingest * 1e3 >= 20e6
    if 100000 in args.series:
        print(f"targets at 100k (>= 50x, >= 20 M samples/s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
