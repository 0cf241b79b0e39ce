"""Pure-Python twin of the aggregation kernels in ``ext/_kernels.pyx``.

This file is the specification: the Cython module must give bit-identical
results for every input (``tests/test_kernels_parity.py`` holds them to it).
Both work on whole columns (array.array / memoryviews), one entry per series.

Series kinds (``agent.telemetry.model.SeriesKind``): 0 gauge, 1 counter that
wraps at 2**32, 2 counter that wraps at 2**64.

Counter deltas: when ``cur >= prev`` the delta is ``cur - prev``.  When the
counter went down it either wrapped or was reset (interface recreated, driver
reloaded, agent of the device restarted).  The wrapped delta ``(mod - prev) +
cur`` is taken if it is at most half the counter's range; otherwise the
counter is taken to have restarted from zero and the delta is ``cur`` (what
Prometheus' ``rate()`` assumes), and the reset is counted.
"""
from __future__ import annotations

import math

NAN = math.nan
_MOD32 = 1 << 32
_MOD64 = 1 << 64
STATS_WIDTH = 8  # min, max, mean, last, p50, p90, p99, count
QUANTILES = (0.5, 0.9, 0.99)


def counter_delta(kind: int, prev: int, cur: int) -> tuple[int, bool]:
    """Return ``(delta, was_reset)`` for one counter sample."""
    if cur >= prev:
        return cur - prev, False
    mod = _MOD32 if kind == 1 else _MOD64
    if prev < mod:
        wrapped = (mod - prev) + cur
        if wrapped <= (mod >> 1):
            return wrapped, False
    return cur, True


def ingest_column(kinds, raw, value, scales, prev_raw, has_prev, dt,
                  hist, cap, col, out_value, out_rate) -> int:
    """Fold one collection into the per-series state; return the reset count.

    Gauges: ``out_value = value`` and the history column gets the value.
    Counters: ``out_value = raw * scale``; the per-second rate
    ``delta * scale / dt`` goes to ``out_rate`` and to the history column (NaN
    for a series' first sample or when ``dt <= 0``); ``prev_raw``/``has_prev``
    are updated.  ``hist`` is row-major: series ``i`` owns
    ``hist[i*cap:(i+1)*cap]`` and ``col`` is this sample's slot.
    """
    resets = 0
    n = len(kinds)
    for i in range(n):
        kind = kinds[i]
        if kind == 0:
            v = value[i]
            out_value[i] = v
            out_rate[i] = NAN
            hist[i * cap + col] = v
            continue
        cur = raw[i]
        scale = scales[i]
        out_value[i] = float(cur) * scale
        rate = NAN
        if has_prev[i] and dt > 0.0:
            delta, was_reset = counter_delta(kind, prev_raw[i], cur)
            if was_reset:
                resets += 1
            rate = float(delta) * scale / dt
        out_rate[i] = rate
        hist[i * cap + col] = rate
        prev_raw[i] = cur
        has_prev[i] = 1
    return resets


def quantile_sorted(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (Prometheus' quantile)."""
    k = len(values)
    pos = q * (k - 1)
    lo = int(pos)
    frac = pos - lo
    if lo + 1 < k:
        return values[lo] + (values[lo + 1] - values[lo]) * frac
    return values[lo]


def window_stats(hist, cap, n, ts, head, count, t_from, out) -> None:
    """Statistics of each series over the slots written at or after ``t_from``.

    The ring holds ``count`` slots, the newest at ``head - 1`` (mod ``cap``).
    NaN entries (no sample, first counter sample) are skipped.  ``out`` gets
    ``STATS_WIDTH`` values per series: min, max, mean, last, p50, p90, p99 and
    the number of samples used (all NaN and 0 when there are none).
    """
    slots = []
    for back in range(count, 0, -1):  # oldest first
        slot = (head - back) % cap
        if ts[slot] >= t_from:
            slots.append(slot)
    for i in range(n):
        base = i * cap
        vals = []
        for slot in slots:
            v = hist[base + slot]
            if v == v:  # not NaN
                vals.append(v)
        o = i * STATS_WIDTH
        k = len(vals)
        if k == 0:
            for j in range(STATS_WIDTH - 1):
                out[o + j] = NAN
            out[o + 7] = 0.0
            continue
        total = 0.0
        for v in vals:
            total += v
        last = vals[-1]
        vals.sort()
        out[o + 0] = vals[0]
        out[o + 1] = vals[-1]
        out[o + 2] = total / k
        out[o + 3] = last
        out[o + 4] = quantile_sorted(vals, QUANTILES[0])
        out[o + 5] = quantile_sorted(vals, QUANTILES[1])
        out[o + 6] = quantile_sorted(vals, QUANTILES[2])
        out[o + 7] = float(k)


# -- protobuf encoding of samples ------------------------------------------
# GetMetrics and SAMPLE streams answer with wire bytes built here, not with
# one protobuf object per series.  The layout is hostagent.v1.Sample:
#   1 labels (map entries, pre-encoded per series), 2 value (double),
#   3 rate (double, only when not NaN), 4 time (pre-encoded field),
#   5 stats (WindowStats: doubles 1-7, count varint 8).
# Each sample is framed as field 2 of MetricFamily (tag 0x12).

def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _double(tag: int, v: float) -> bytes:
    return bytes((tag,)) + _PACK_D(v)


_PACK_D = __import__("struct").Struct("<d").pack


def encode_samples(label_blobs, idx, value, rate, stats, time_field: bytes) -> bytes:
    """Concatenated ``MetricFamily.samples`` entries for series ``idx``.

    ``label_blobs[i]`` is series ``i``'s encoded labels map; ``time_field`` the
    encoded ``time`` field (tag included); ``stats`` is None or the output of
    :func:`window_stats` (``STATS_WIDTH`` per series).
    """
    out = []
    for i in idx:
        body = [label_blobs[i], _double(0x11, value[i])]
        r = rate[i]
        if r == r:
            body.append(_double(0x19, r))
        body.append(time_field)
        if stats is not None:
            o = i * STATS_WIDTH
            st = b"".join(_double(0x09 + 8 * j, stats[o + j]) for j in range(7))
            st += b"\x40" + varint(int(stats[o + 7]))
            body += [b"\x2a", varint(len(st)), st]
        sample = b"".join(body)
        out += [b"\x12", varint(len(sample)), sample]
    return b"".join(out)


def encode_samples_packed(labels, label_off, idx, value, rate, stats, time_field: bytes) -> bytes:
    """:func:`encode_samples` with series ``i``'s labels at
    ``labels[label_off[i]:label_off[i + 1]]`` (all labels of a layout in one
    bytes object: what lets the Cython kernel run without the GIL).

    Raises, before writing anything: ValueError when ``rate``/``stats`` have
    fewer series than ``value``, ``label_off`` fewer than ``len(value) + 1``
    entries, or a selected series' offsets decrease or run outside
    ``labels``; IndexError for an ``idx`` entry outside ``range(len(value))``;
    the count errors of :func:`encode_samples`.
    """
    n = len(value)
    if len(rate) < n:
        raise ValueError(f"rate has {len(rate)} entries, needs at least len(value) = {n}")
    if len(label_off) < n + 1:
        raise ValueError(f"label_off has {len(label_off)} entries, needs at least len(value) + 1 = {n + 1}")
    if stats is not None and len(stats) // STATS_WIDTH < n:
        raise ValueError(f"stats has {len(stats)} entries, needs at least "
                         f"len(value) * STATS_WIDTH = {n} * {STATS_WIDTH}")
    blobs = {}
    for j, i in enumerate(idx):
        if not 0 <= i < n:
            raise IndexError(f"idx[{j}] = {i} is not a series: needs 0 <= i < {n}")
        if not 0 <= label_off[i] <= label_off[i + 1] <= len(labels):
            raise ValueError(f"label_off of series {i} runs outside labels or decreases")
        if stats is not None:
            _check_count(stats[i * STATS_WIDTH + STATS_WIDTH - 1])
        blobs[i] = bytes(labels[label_off[i]:label_off[i + 1]])
    return encode_samples(blobs, idx, value, rate, stats, time_field)  # it reads only blobs[i in idx]


def _check_count(c: float) -> None:
    """The Cython kernel's errors for a count the wire cannot carry."""
    if c != c:
        raise ValueError("stats count is NaN: cannot convert float NaN to integer")
    if c in (math.inf, -math.inf):
        raise OverflowError("stats count is infinite: cannot convert float infinity to integer")
    if c <= -1.0:
        raise ValueError(f"stats count must not be negative, got {c!r}")
    if c >= 18446744073709551616.0:
        raise OverflowError(f"stats count {c!r} does not fit 64 bits")
