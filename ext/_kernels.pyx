# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
"""Cython aggregation kernels; ``agent/core/kernels_py.py`` is their
specification and this module must match it bit for bit.

Inputs are validated once, with the GIL held, so the loops that follow never
read or write out of bounds; the loops then run without the GIL and without a
Python object per element.  Rounding matches the twin's because every step is
the same IEEE double operation in the same order (setup.py builds with
``-ffp-contract=off``: no fused multiply-add), and because a C cast from
``uint64_t`` to ``double`` rounds to nearest like Python's ``float(int)``.
"""
from libc.math cimport signbit
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

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


# -- sorting the window's values ---------------------------------------------
# An inline introsort on the scratch buffer: no comparison callback (libc's
# qsort spent most of window_stats' time in one), no recursion.  The values
# hold no NaN (window_stats drops them first), so ``<`` is a total order but
# for -0.0 == 0.0; where the twin's stable list.sort keeps such zeros in time
# order, _series_stats restores that order after sorting.

cdef enum:
    _SMALL = 16  # runs this short are left to the final insertion sort
    _STACK = 128  # pending ranges; the smaller side is always taken first


cdef inline void _swap(double *a, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef double t = a[i]
    a[i] = a[j]
    a[j] = t


cdef void _heapsort(double *a, Py_ssize_t n) noexcept nogil:
    """Fallback for a range quicksort keeps splitting badly: O(n log n) always."""
    cdef Py_ssize_t start = n // 2, end = n, root, child
    cdef double v
    while end > 1:
        if start > 0:  # heapify
            start -= 1
            v = a[start]
            root = start
        else:  # move the max to the end, sift the displaced leaf down
            end -= 1
            v = a[end]
            a[end] = a[0]
            root = 0
        child = 2 * root + 1
        while child < end:
            if child + 1 < end and a[child] < a[child + 1]:
                child += 1
            if not v < a[child]:
                break
            a[root] = a[child]
            root = child
            child = 2 * root + 1
        a[root] = v


cdef void _sort_doubles(double *a, Py_ssize_t n) noexcept nogil:
    """Sort ``a[:n]`` (no NaN) ascending.

    Quicksort with a median-of-three pivot partitions ranges longer than
    _SMALL; the short runs it leaves are finished by one insertion sort over
    the whole buffer (each element then moves less than _SMALL places).  A
    range still being split after 2*log2(n) levels is heap-sorted instead, so
    the worst case stays O(n log n); taking the smaller side first bounds the
    stack by log2(n) entries.
    """
    cdef Py_ssize_t lo_stack[_STACK]
    cdef Py_ssize_t hi_stack[_STACK]
    cdef int depth_stack[_STACK]
    cdef Py_ssize_t top = 0, lo, hi, mid, i, j
    cdef int depth, limit = 0
    cdef double pivot, v
    i = n
    while i > 1:
        limit += 2
        i >>= 1
    if n > _SMALL:
        lo_stack[0] = 0
        hi_stack[0] = n - 1
        depth_stack[0] = 0
        top = 1
    while top > 0:
        top -= 1
        lo = lo_stack[top]
        hi = hi_stack[top]
        depth = depth_stack[top]
        while hi - lo >= _SMALL:
            if depth >= limit:
                _heapsort(a + lo, hi - lo + 1)
                break
            depth += 1
            mid = lo + (hi - lo) // 2
            if a[mid] < a[lo]:
                _swap(a, mid, lo)
            if a[hi] < a[lo]:
                _swap(a, hi, lo)
            if a[hi] < a[mid]:
                _swap(a, hi, mid)
            # a[lo] <= pivot <= a[hi] stop the scans; the pivot waits at hi - 1.
            pivot = a[mid]
            _swap(a, mid, hi - 1)
            i = lo
            j = hi - 1
            while True:
                i += 1
                while a[i] < pivot:
                    i += 1
                j -= 1
                while pivot < a[j]:
                    j -= 1
                if i >= j:
                    break
                _swap(a, i, j)
            _swap(a, i, hi - 1)  # the pivot to its place: a[lo:i] <= a[i] <= a[i+1:hi+1]
            if i - lo < hi - i:  # push the larger side, go on with the smaller
                lo_stack[top] = i + 1
                hi_stack[top] = hi
                depth_stack[top] = depth
                hi = i - 1
            else:
                lo_stack[top] = lo
                hi_stack[top] = i - 1
                depth_stack[top] = depth
                lo = i + 1
            top += 1
    # Every element is now less than _SMALL places from its final position
    # (and a[0] is a minimum when n > _SMALL, but the guard stays for n <= _SMALL).
    for i in range(1, n):
        v = a[i]
        j = i
        while j > 0 and v < a[j - 1]:
            a[j] = a[j - 1]
            j -= 1
        a[j] = v


cdef inline double _quantile_sorted(const double *vals, Py_ssize_t k, double q) noexcept nogil:
    """The twin's ``quantile_sorted``, operation for operation."""
    cdef double pos = q * <double>(k - 1)
    cdef Py_ssize_t lo = <Py_ssize_t>pos
    cdef double frac = pos - <double>lo
    if lo + 1 < k:
        return vals[lo] + (vals[lo + 1] - vals[lo]) * frac
    return vals[lo]


cdef void _series_stats(const double *row, const Py_ssize_t *slots, Py_ssize_t m,
                        double *vals, double *o) noexcept nogil:
    cdef Py_ssize_t j, k = 0, z
    cdef Py_ssize_t neg_zeros = 0, pos_zeros = 0
    cdef double v, total = 0.0, last
    cdef bint ordered = True  # already ascending (ties in time order): no sort
    for j in range(m):  # oldest first, as the twin sums
        v = row[slots[j]]
        if v == v:
            if k and v < vals[k - 1]:
                ordered = False
            vals[k] = v
            k += 1
            total += v
            if v == 0.0:
                if signbit(v):
                    neg_zeros += 1
                else:
                    pos_zeros += 1
    if k == 0:
        for j in range(_WIDTH - 1):
            o[j] = _NAN
        o[_WIDTH - 1] = 0.0
        return
    last = vals[k - 1]
    if not ordered:
        _sort_doubles(vals, k)
        if neg_zeros and pos_zeros:
            # list.sort is stable and -0.0 == 0.0, so the twin keeps its zeros
            # in chronological order; this sort need not.  Put them back in
            # that order.
            z = 0
            while vals[z] != 0.0:
                z += 1
            for j in range(m):
                v = row[slots[j]]
                if v == 0.0:
                    vals[z] = v
                    z += 1
    o[0] = vals[0]
    o[1] = vals[k - 1]
    o[2] = total / <double>k
    o[3] = last
    o[4] = _quantile_sorted(vals, k, _Q50)
    o[5] = _quantile_sorted(vals, k, _Q90)
    o[6] = _quantile_sorted(vals, k, _Q99)
    o[7] = <double>k


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
    cdef double *vals = <double *>malloc((count + 1) * sizeof(double))
    if slots == NULL or vals == NULL:
        free(slots)
        free(vals)
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
                _series_stats(&hist[i * cap], slots, m, vals, &out[i * _WIDTH])
    finally:
        free(slots)
        free(vals)
