"""Aggregation kernels, Cython against the pure-Python twin, on one core.

    .venv/bin/python bench/bench_aggregation.py [--series 1000 10000 100000]

Series are 80% 64-bit counters and 20% gauges with a retention of 180 slots.
``ingest_column`` folds one collection into state whose history is already
full; ``window_stats`` summarises the full 180-slot history of every series.
Every series of this workload is steady (a counter's increment and a gauge's
value never change), so its history is already in order and the Cython
kernel skips sorting; "noisy" runs ``window_stats`` again over histories of
random values (uniform on 0..100), where it must sort.  ``encode_samples``
writes the GetMetrics bytes of every series, without and with window stats.
Each figure is the median of several runs (``time.perf_counter``).

Targets: at 100k series the Cython ingest is >= 50x the twin and >= 20 M
samples/s; at 10k series ``window_stats`` is >= 25x the twin.
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
# Sample.time (field 4), a Timestamp of 11 bytes: seconds (1) and nanos (2).
WHEN = (b"\x22\x0b\x08" + kernels_py.varint(1_700_000_000)
        + b"\x10" + kernels_py.varint(123456789))


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


def noisy_history(n: int, seed: int = 2) -> array:
    """``n`` rows of CAP random values; 97 distinct rows, repeated."""
    rnd = random.Random(seed)
    rows = [array("d", (rnd.uniform(0, 100) for _ in range(CAP))) for _ in range(97)]
    hist = array("d")
    for i in range(n):
        hist += rows[i % 97]
    return hist


def label_blobs(n: int) -> list[bytes]:
    """``Sample.labels`` of each series: device and netns, as the agent encodes them."""
    def field(tag: int, payload: bytes) -> bytes:
        return bytes((tag,)) + kernels_py.varint(len(payload)) + payload

    def entry(k: str, v: str) -> bytes:
        return field(0x0A, field(0x0A, k.encode()) + field(0x12, v.encode()))

    return [entry("device", f"tap{i}") + entry("netns", f"ns-{i % 17}") for i in range(n)]


def median_ms(fn, repeat: int) -> float:
    times = []
    for r in range(repeat):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(w: Workload, mod, repeat: int, noisy: array, blobs: list[bytes]) -> dict[str, float]:
    raws = [w.next_raw() for _ in range(repeat)]  # made before the clock starts
    ms = {"ingest": median_ms(lambda r: w.ingest(mod, raws[r], (w.head + r) % CAP), repeat)}
    few = max(3, repeat // 3)
    out = array("d", bytes(8 * WIDTH * w.n))
    for name, hist in (("ws", w.hist), ("noisy", noisy)):
        ms[name] = median_ms(lambda r: mod.window_stats(hist, CAP, w.n, w.ts, w.head, w.count,
                                                        -math.inf, out), few)
    idx = array("q", range(w.n))
    for name, stats in (("encode", None), ("encode+stats", out)):
        ms[name] = median_ms(lambda r: mod.encode_samples(blobs, idx, w.out_value, w.out_rate,
                                                          stats, WHEN), few)
    return ms


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
            f" {'window_stats ms':>16} {'speedup':>8} {'noisy ws ms':>12} {'speedup':>8}")
    enc_head = (f"{'series':>8}  {'impl':<7} {'encode_samples ms':>18} {'speedup':>8}"
                f" {'with stats ms':>14} {'speedup':>8} {'MB out':>7}")
    print(head)
    print("-" * len(head))
    enc_lines = []
    ok = ws_ok = True
    for n in args.series:
        w = Workload(n, _kernels)
        noisy, blobs = noisy_history(n), label_blobs(n)
        py = bench(w, kernels_py, 5 if n < 100000 else 3, noisy, blobs)
        cy = bench(w, _kernels, 51, noisy, blobs)
        size = len(_kernels.encode_samples(blobs, array("q", range(n)), w.out_value, w.out_rate,
                                           None, WHEN)) / 1e6
        for impl, t in (("python", py), ("cython", cy)):
            up = {k: f"{py[k] / t[k]:.0f}x" if impl == "cython" else "" for k in t}
            print(f"{n:>8}  {impl:<7} {t['ingest']:>10.3f} {n / t['ingest'] * 1e3:>12,.0f}"
                  f" {up['ingest']:>8} {t['ws']:>16.2f} {up['ws']:>8}"
                  f" {t['noisy']:>12.2f} {up['noisy']:>8}", flush=True)
            enc_lines.append(f"{n:>8}  {impl:<7} {t['encode']:>18.3f} {up['encode']:>8}"
                             f" {t['encode+stats']:>14.3f} {up['encode+stats']:>8} {size:>7.1f}")
        if n == 100000:
            ok = py["ingest"] / cy["ingest"] >= 50 and n / cy["ingest"] * 1e3 >= 20e6
        if n == 10000:
            ws_ok = py["ws"] / cy["ws"] >= 25 and py["noisy"] / cy["noisy"] >= 25
    print("\nencode_samples, every series in one call (MB out: without stats)")
    print(enc_head)
    print("-" * len(enc_head))
    print("\n".join(enc_lines))
    if 100000 in args.series:
        print(f"targets at 100k (ingest >= 50x, >= 20 M samples/s): {'met' if ok else 'NOT met'}")
    if 10000 in args.series:
        print("target at 10k (window_stats >= 25x, steady and noisy):",
              "met" if ws_ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
