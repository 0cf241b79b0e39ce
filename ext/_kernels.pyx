# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
"""Cython aggregation kernels; ``agent/core/kernels_py.py`` is their
specification and this module must match it bit for bit.

Inputs are validated once, with the GIL held, so the loops that follow never
read or write out of bounds; the loops then run without the GIL and without a
Python object per element (but encode_samples', which read the label blobs,
Python bytes objects, and keep the GIL).  Rounding matches the twin's because every step is
the same IEEE double operation in the same order (setup.py builds with
``-ffp-contract=off``: no fused multiply-add), and because a C cast from
``uint64_t`` to ``double`` rounds to nearest like Python's ``float(int)``.
"""
from libc.math cimport isinf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

import math

STATS_WIDTH = 8  # min, max, mean, last, p50, p90, p99, count
QUANTILES = (0.5, 0.9, 0.99)

cdef enum:
    _WIDTH = 8
cdef double _Q50 = 0.5
cdef double _Q90 = 0.9
cdef double _Q99 = 0.99
cdef uint64_t _MOD32 = 1ULL << 32
cdef uint64_t _HALF32 = 1ULL << 31
cdef uint64_t _HALF64 = 1ULL << 63
# The twin writes math.nan; take its very bits rather than the C macro's.
cdef double _NAN = math.nan


def _short(str name, Py_ssize_t have, str need):
    return ValueError(f"{name} has {have} entries, needs at least {need}")


cdef inline uint64_t _counter_delta(unsigned char kind, uint64_t prev, uint64_t cur,
                                    bint *was_reset) noexcept nogil:
    """``counter_delta`` of the twin in uint64_t arithmetic."""
    cdef uint64_t wrapped
    if cur >= prev:
        return cur - prev
    if kind == 1:
        if prev < _MOD32:  # else the value never fitted 32 bits: a reset
            wrapped = (_MOD32 - prev) + cur  # < 2**32, no overflow
            if wrapped <= _HALF32:
                return wrapped
    else:
        wrapped = cur - prev  # wraps to (2**64 - prev) + cur
        if wrapped <= _HALF64:
            return wrapped
    was_reset[0] = True
    return cur


def ingest_column(const unsigned char[::1] kinds not None, const uint64_t[::1] raw not None,
                  const double[::1] value not None, const double[::1] scales not None,
                  uint64_t[::1] prev_raw not None, unsigned char[::1] has_prev not None,
                  double dt, double[::1] hist not None, Py_ssize_t cap, Py_ssize_t col,
                  double[::1] out_value not None, double[::1] out_rate not None):
    """Fold one collection into the per-series state; return the reset count.

    Same contract as ``kernels_py.ingest_column``; raises ValueError instead
    of touching memory when a column is shorter than ``kinds``, ``hist`` is
    shorter than ``len(kinds) * cap``, ``cap <= 0`` or ``col`` is not in
    ``range(cap)``.
    """
    cdef Py_ssize_t n = kinds.shape[0]
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    if not 0 <= col < cap:
        raise ValueError(f"col must be in range({cap}), got {col}")
    for name, have in (("raw", raw.shape[0]), ("value", value.shape[0]),
                       ("scales", scales.shape[0]), ("prev_raw", prev_raw.shape[0]),
                       ("has_prev", has_prev.shape[0]), ("out_value", out_value.shape[0]),
                       ("out_rate", out_rate.shape[0])):
        if have < n:
            raise _short(name, have, f"len(kinds) = {n}")
    if hist.shape[0] // cap < n:
        raise _short("hist", hist.shape[0], f"len(kinds) * cap = {n} * {cap}")

    cdef Py_ssize_t i, resets = 0
    cdef unsigned char kind
    cdef uint64_t cur, delta
    cdef double scale, rate, v
    cdef bint was_reset
    with nogil:
        for i in range(n):
            kind = kinds[i]
            if kind == 0:
                v = value[i]
                out_value[i] = v
                out_rate[i] = _NAN
                hist[i * cap + col] = v
                continue
            cur = raw[i]
            scale = scales[i]
            out_value[i] = <double>cur * scale
            rate = _NAN
            if has_prev[i] and dt > 0.0:
                was_reset = False
                delta = _counter_delta(kind, prev_raw[i], cur, &was_reset)
                if was_reset:
                    resets += 1
                rate = <double>delta * scale / dt
            out_rate[i] = rate
            hist[i * cap + col] = rate
            prev_raw[i] = cur
            has_prev[i] = 1
    return resets


# -- order statistics of the window's values ----------------------------------
# window_stats needs, of each series' values in sorted order, the smallest,
# the largest and the two neighbours that each quantile interpolates between.
# It gets them from a partial quicksort on a scratch buffer, inline: no
# comparison callback (libc's qsort spent most of the time calling one), no
# recursion, few data-dependent branches (random data mispredicts half of
# them), and no work on ranges that hold none of the ranks it reads.
#
# It sorts integer keys rather than the doubles: _key maps a double's bits to
# an int64 whose order is the doubles' order (NaN, which window_stats drops
# first, aside), so comparisons are integer ones that the compiler turns into
# conditional moves (it keeps branches for doubles, whose comparisons it may
# not reorder), and a key maps back to the very same bits.  The one
# difference from ``<`` on doubles: -0.0 (key -1) sorts before 0.0 (key 0),
# where the twin's stable list.sort, for which they are equal, keeps them in
# time order; _zeros_in_time_order looks such zeros up in time order.

include "_select.pxi"

cdef void _series_stats(const double *row, const Py_ssize_t *slots, Py_ssize_t m,
                        int64_t *keys, double *o) noexcept nogil:
    """One series' statistics; ``keys`` is scratch for ``2 * m + 8`` keys."""
    cdef Py_ssize_t j, k = 0, r
    cdef double v, total = 0.0, pos, frac
    cdef int64_t key, prev = -_LOW63 - 1, lowest, highest
    cdef bint unordered = False  # if the keys already ascend, nothing moves
    cdef Py_ssize_t ranks[_RANKS]
    cdef Py_ssize_t at[_READ]  # the rank of each value read below
    cdef int64_t got[_READ]  # the key of that rank
    cdef double qs[3]
    for j in range(m):  # oldest first, as the twin sums
        v = row[slots[j]]
        if v == v:
            key = _key(v)
            unordered |= key < prev
            prev = key
            keys[k] = key
            k += 1
            total += v
    if k == 0:
        for j in range(_WIDTH - 1):
            o[j] = _NAN
        o[_WIDTH - 1] = 0.0
        return
    o[2] = total / <double>k
    o[3] = _unkey(keys[k - 1])  # last: the same bits as the value
    o[7] = <double>k
    qs[0] = _Q50
    qs[1] = _Q90
    qs[2] = _Q99
    for j in range(3):  # the ranks quantile_sorted reads
        r = <Py_ssize_t>(qs[j] * <double>(k - 1))
        ranks[2 * j] = r
        ranks[2 * j + 1] = r + 1 if r + 1 < k else r
    if unordered:
        _select_keys(keys, keys + k + 8, k, ranks, &lowest, &highest)
    else:
        lowest = keys[0]
        highest = keys[k - 1]
    at[0] = 0
    got[0] = lowest
    at[1] = k - 1
    got[1] = highest
    for j in range(_RANKS):
        at[2 + j] = ranks[j]
        got[2 + j] = keys[ranks[j]]
    if unordered:  # (keys that already ascended are in time order)
        _zeros_in_time_order(got, at, _READ, keys, k, row, slots, m)
    o[0] = _unkey(got[0])
    o[1] = _unkey(got[1])
    for j in range(3):  # the twin's quantile_sorted, operation for operation
        pos = qs[j] * <double>(k - 1)
        r = <Py_ssize_t>pos
        frac = pos - <double>r
        v = _unkey(got[2 + 2 * j])  # values[lo]
        if r + 1 < k:
            v = v + (_unkey(got[3 + 2 * j]) - v) * frac
        o[4 + j] = v


def window_stats(const double[::1] hist not None, Py_ssize_t cap, Py_ssize_t n,
                 const double[::1] ts not None, Py_ssize_t head, Py_ssize_t count,
                 double t_from, double[::1] out not None):
    """Statistics of each series over the slots written at or after ``t_from``.

    Same contract as ``kernels_py.window_stats``; raises ValueError when
    ``cap <= 0``, ``n < 0``, ``count`` is not in ``0..cap``, ``hist`` is
    shorter than ``n * cap``, ``ts`` shorter than ``cap`` or ``out`` shorter
    than ``n * STATS_WIDTH``.
    """
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    if not 0 <= count <= cap:
        raise ValueError(f"count must be in 0..cap = 0..{cap}, got {count}")
    if hist.shape[0] // cap < n:
        raise _short("hist", hist.shape[0], f"n * cap = {n} * {cap}")
    if ts.shape[0] < cap:
        raise _short("ts", ts.shape[0], f"cap = {cap}")
    if out.shape[0] // _WIDTH < n:
        raise _short("out", out.shape[0], f"n * STATS_WIDTH = {n} * {_WIDTH}")

    cdef Py_ssize_t *slots = <Py_ssize_t *>malloc((count + 1) * sizeof(Py_ssize_t))
    # _series_stats' scratch: the sort keys (with the 8 spare slots
    # _sort_small reads) and the sort's second buffer.
    cdef int64_t *keys = <int64_t *>calloc(2 * count + 8, sizeof(int64_t))
    if slots == NULL or keys == NULL:
        free(slots)
        free(keys)
        raise MemoryError()
    cdef Py_ssize_t i, back, slot, m = 0
    cdef Py_ssize_t h = head % cap  # C remainder; made Python's below
    if h < 0:
        h += cap
    try:
        with nogil:
            for back in range(count, 0, -1):  # oldest first
                slot = h - back
                if slot < 0:
                    slot += cap
                if ts[slot] >= t_from:
                    slots[m] = slot
                    m += 1
            for i in range(n):
                _series_stats(&hist[i * cap], slots, m, keys, &out[i * _WIDTH])
    finally:
        free(slots)
        free(keys)


# -- protobuf encoding of samples ---------------------------------------------
# The twin's ``encode_samples`` with the same bytes out: hostagent.v1.Sample
# per series in ``idx``, framed as MetricFamily field 2 (tag 0x12).  A first
# pass validates and sums the exact size, a second writes into one bytes
# object.  Both passes hold the GIL: they read the label blobs, Python bytes
# objects owned by a list another thread could change, through borrowed
# pointers; no Python code runs between the passes (allocating a bytes object
# starts no garbage collection), so the list stays as the first pass saw it.
# The second pass still checks every sample against the room left, so that
# columns changed meanwhile by C code without the GIL (an ingest_column
# called without the block's lock) make an error, not an overrun.  Doubles
# are copied as they lie in memory, which is the wire's little-endian IEEE
# layout on little-endian hosts (x86-64, arm64) and keeps NaN payloads, as
# the twin's struct.pack("<d") does.

include "_encode.pxi"
