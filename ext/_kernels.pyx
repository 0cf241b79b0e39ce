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

cdef enum:
    _SMALL = 8  # ranges this short are finished by a sorting network
    _STACK = 64  # pending ranges: at most log2(n) + 1 (see _select_keys)
    _RANKS = 6  # the ranks the three quantiles read
    _READ = 2 + _RANKS  # the keys read: the smallest, the largest and those

cdef int64_t _LOW63 = 0x7FFFFFFFFFFFFFFF
cdef int64_t _PAD = 0x7FFFFFFFFFFFFFFF  # the key of a NaN: above every real key
cdef int _depth_factor = 2  # quicksort levels allowed per log2(n)


def _set_sort_depth_factor(int factor):
    """For tests only, not thread-safe: allow ``factor * log2(n)`` quicksort
    levels before the heapsort fallback (0: heapsort every range longer than
    _SMALL); return the previous factor."""
    global _depth_factor
    if factor < 0:
        raise ValueError(f"factor must not be negative, got {factor}")
    previous, _depth_factor = _depth_factor, factor
    return previous


cdef inline int64_t _key(double v) noexcept nogil:
    """Order-preserving: a negative double's magnitude bits are flipped."""
    cdef int64_t b
    memcpy(&b, &v, 8)
    return b ^ ((b >> 63) & _LOW63)


cdef inline double _unkey(int64_t b) noexcept nogil:
    """The inverse of _key (which is its own inverse)."""
    cdef double v
    b = b ^ ((b >> 63) & _LOW63)
    memcpy(&v, &b, 8)
    return v


cdef inline void _cswap(int64_t *a, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    """Order ``a[i], a[j]``; compiles to a compare and two conditional moves."""
    cdef int64_t x = a[i], y = a[j]
    a[i] = y if y < x else x
    a[j] = x if y < x else y


cdef void _sort_small(int64_t *a, Py_ssize_t n) noexcept nogil:
    """Sort ``a[:n]``, ``n <= 8``, reading and rewriting ``a[:8]`` (the
    buffer has room; the keys past ``n`` go back unchanged): Batcher's
    19-comparator network over a copy padded with keys above all others."""
    cdef int64_t b[8]
    cdef int64_t c[8]
    cdef Py_ssize_t i
    for i in range(8):
        c[i] = a[i]
        b[i] = c[i] if i < n else _PAD
    _cswap(b, 0, 1); _cswap(b, 2, 3); _cswap(b, 4, 5); _cswap(b, 6, 7)
    _cswap(b, 0, 2); _cswap(b, 1, 3); _cswap(b, 4, 6); _cswap(b, 5, 7)
    _cswap(b, 1, 2); _cswap(b, 5, 6); _cswap(b, 0, 4); _cswap(b, 3, 7)
    _cswap(b, 1, 5); _cswap(b, 2, 6)
    _cswap(b, 1, 4); _cswap(b, 3, 6)
    _cswap(b, 2, 4); _cswap(b, 3, 5)
    _cswap(b, 3, 4)
    for i in range(8):
        a[i] = b[i] if i < n else c[i]


cdef void _heapsort(int64_t *a, Py_ssize_t n) noexcept nogil:
    """Fallback for a range quicksort keeps splitting badly: O(n log n) always."""
    cdef Py_ssize_t start = n // 2, end = n, root, child
    cdef int64_t v
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


cdef inline Py_ssize_t _partition(int64_t *a, int64_t *tmp, Py_ssize_t lo, Py_ssize_t hi,
                                  bint or_equal) noexcept nogil:
    """Stable, branch-free partition of ``a[lo+1:hi]`` around the pivot
    ``a[lo]``: the keys below it (or, with ``or_equal``, not above it) go to
    ``a[lo:]`` in order, then the pivot, then the rest, which wait in
    ``tmp`` meanwhile.  Every key is stored to both sides and only the side
    it belongs to moves on, so no store is read back in the loop (as an
    in-place swap loop's are).  Return the pivot's index."""
    cdef int64_t pivot = a[lo], x
    cdef Py_ssize_t i, left = lo
    for i in range(lo + 1, hi):
        x = a[i]
        a[left] = x  # left < i: already read
        tmp[i - 1 - left] = x  # tmp[:i - 1 - left] holds the keys not kept left
        if or_equal:
            left += x <= pivot
        else:
            left += x < pivot
    a[left] = pivot
    memcpy(a + left + 1, tmp, (hi - 1 - left) * sizeof(int64_t))
    return left


cdef Py_ssize_t _partition_all(int64_t *a, int64_t *tmp, Py_ssize_t n,
                               int64_t *lowest, int64_t *highest) noexcept nogil:
    """``_partition(a, tmp, 0, n, False)`` that also finds the smallest and
    the largest key, which the partial sort need not put in place."""
    cdef int64_t pivot = a[0], x, low = a[0], high = a[0]
    cdef Py_ssize_t i, left = 0
    for i in range(1, n):
        x = a[i]
        a[left] = x
        tmp[i - 1 - left] = x
        left += x < pivot
        low = x if x < low else low
        high = x if x > high else high
    a[left] = pivot
    memcpy(a + left + 1, tmp, (n - 1 - left) * sizeof(int64_t))
    lowest[0] = low
    highest[0] = high
    return left


cdef inline void _median_first(int64_t *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Move the median of ``a[lo]``, ``a[mid]`` and ``a[hi - 1]`` to ``a[lo]``."""
    cdef Py_ssize_t mid = lo + (hi - lo) // 2
    _cswap(a, lo, mid)
    _cswap(a, mid, hi - 1)
    _cswap(a, lo, mid)  # now a[lo] <= a[mid] <= a[hi - 1]
    a[lo], a[mid] = a[mid], a[lo]


cdef inline bint _wanted(const Py_ssize_t *ranks, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef int r
    for r in range(_RANKS):
        if lo <= ranks[r] < hi:
            return True
    return False


cdef void _select_keys(int64_t *a, int64_t *tmp, Py_ssize_t n, const Py_ssize_t *ranks,
                       int64_t *lowest, int64_t *highest) noexcept nogil:
    """Reorder ``a[:n]`` so that ``a[r]`` is the key of rank ``r`` (the one a
    full sort would put there) for each ``r`` in ``ranks[:_RANKS]``, and set
    ``lowest`` and ``highest`` to the smallest and the largest key.  ``a``
    has room for ``n + 8`` keys, ``tmp`` for ``n``.

    Quicksort after pattern-defeating quicksort's scheme, simplified, that
    only goes on with ranges holding a wanted rank: the median of three keys
    is the pivot and a branch-free partition puts the keys below it before
    it.  When the pivot equals the key just before its range (a lower bound
    of the range, placed by an earlier partition), the range holds many equal
    keys: those are split off and are done, so few distinct values cost
    linear time.  Ranges of _SMALL or fewer go to a sorting network.  A range
    still being split after 2*log2(n) levels is heap-sorted instead, so the
    worst case stays O(n log n); taking the smaller side first bounds the
    stack by log2(n) + 1 entries.
    """
    cdef Py_ssize_t lo_stack[_STACK]
    cdef Py_ssize_t hi_stack[_STACK]
    cdef int depth_stack[_STACK]
    cdef Py_ssize_t top = 0, lo, hi, p
    cdef int depth, limit = 0
    cdef bint want_left, want_right
    p = n
    while p > 1:
        limit += _depth_factor
        p >>= 1
    if n <= _SMALL or limit == 0:  # sorted whole
        if n <= _SMALL:
            _sort_small(a, n)
        else:
            _heapsort(a, n)
        lowest[0] = a[0]
        highest[0] = a[n - 1]
        return
    _median_first(a, 0, n)
    p = _partition_all(a, tmp, n, lowest, highest)  # the first level
    if _wanted(ranks, 0, p):
        lo_stack[top] = 0
        hi_stack[top] = p
        depth_stack[top] = 1
        top += 1
    if _wanted(ranks, p + 1, n):
        lo_stack[top] = p + 1
        hi_stack[top] = n
        depth_stack[top] = 1
        top += 1
    while top > 0:
        top -= 1
        lo = lo_stack[top]
        hi = hi_stack[top]
        depth = depth_stack[top]
        while True:
            if hi - lo <= _SMALL:
                _sort_small(a + lo, hi - lo)
                break
            if depth >= limit:
                _heapsort(a + lo, hi - lo)
                break
            depth += 1
            _median_first(a, lo, hi)
            if lo > 0 and a[lo - 1] == a[lo]:
                # a[lo - 1] <= every key here, so those equal to the pivot
                # are the smallest: they are in place.
                lo = _partition(a, tmp, lo, hi, True) + 1
                if not _wanted(ranks, lo, hi):
                    break
                continue
            p = _partition(a, tmp, lo, hi, False)  # a[lo:p] < a[p] <= a[p+1:hi]
            want_left = _wanted(ranks, lo, p)
            want_right = _wanted(ranks, p + 1, hi)
            if want_left and want_right:  # push the larger, go on with the smaller
                if p - lo < hi - p:
                    lo_stack[top] = p + 1
                    hi_stack[top] = hi
                    hi = p
                else:
                    lo_stack[top] = lo
                    hi_stack[top] = p
                    lo = p + 1
                depth_stack[top] = depth
                top += 1
            elif want_left:
                hi = p
            elif want_right:
                lo = p + 1
            else:
                break


cdef inline bint _is_zero_key(int64_t key) noexcept nogil:
    return key == -1 or key == 0


cdef void _zeros_in_time_order(int64_t *got, const Py_ssize_t *at, Py_ssize_t n,
                               const int64_t *keys, Py_ssize_t k, const double *row,
                               const Py_ssize_t *slots, Py_ssize_t m) noexcept nogil:
    """Make ``got[i]``, the key of rank ``at[i]``, the twin's where it is a
    zero's.  The twin's sorted list holds its zeros, equal for list.sort, in
    time order, where the keys put -0.0 first.  With zeros of both signs, a
    rank in the zeros' run, which starts at the count of values below zero,
    gets the zero of that place in time order."""
    cdef Py_ssize_t i, j, t, below_zero = 0, neg_zeros = 0, pos_zeros = 0
    cdef double v
    for i in range(n):
        if _is_zero_key(got[i]):
            break
    else:
        return
    for j in range(k):  # the counts do not depend on the keys' order
        below_zero += keys[j] < -1
        neg_zeros += keys[j] == -1
        pos_zeros += keys[j] == 0
    if neg_zeros == 0 or pos_zeros == 0:
        return
    for i in range(n):
        if _is_zero_key(got[i]):
            t = at[i] - below_zero  # 0 <= t < neg_zeros + pos_zeros
            for j in range(m):
                v = row[slots[j]]
                if v == 0.0:
                    if t == 0:
                        got[i] = _key(v)
                        break
                    t -= 1


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

cdef extern from "Python.h":
    bint PyBytes_Check(object o)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bytes PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    void *PyList_GET_ITEM(object lst, Py_ssize_t i)
    Py_ssize_t PY_SSIZE_T_MAX


import struct


cdef bytes _native_double(double x):
    return PyBytes_FromStringAndSize(<const char *>&x, 8)


# A probe whose bytes differ from their reverse: any layout but "<d" shows.
_DOUBLES_LITTLE_ENDIAN = _native_double(-1.2345678901234567e-300) == \
    struct.pack("<d", -1.2345678901234567e-300)

cdef enum:
    _DOUBLE_FIELD = 1 + 8  # a one-byte tag and the double
    _STATS_DOUBLES = 7 * _DOUBLE_FIELD  # WindowStats fields 1-7


cdef inline Py_ssize_t _varint_size(uint64_t n) noexcept nogil:
    cdef Py_ssize_t size = 1
    while n > 0x7F:
        n >>= 7
        size += 1
    return size


cdef inline char *_put_varint(char *p, uint64_t n) noexcept nogil:
    while n > 0x7F:
        p[0] = <char>((n & 0x7F) | 0x80)
        p += 1
        n >>= 7
    p[0] = <char>n
    return p + 1


cdef inline char *_put_double(char *p, char tag, const double *v) noexcept nogil:
    p[0] = tag
    memcpy(p + 1, v, 8)
    return p + _DOUBLE_FIELD


cdef inline uint64_t _count(double c) except? 0xFFFFFFFFFFFFFFFF:
    """``int(c)`` as the twin's varint takes it, or the twin's exception."""
    if c != c:
        raise ValueError("stats count is NaN: cannot convert float NaN to integer")
    if isinf(c):
        raise OverflowError("stats count is infinite: cannot convert float infinity to integer")
    if c <= -1.0:
        raise ValueError(f"stats count must not be negative, got {c!r}")
    if c >= 18446744073709551616.0:
        # The twin would write a varint longer than protobuf's ten bytes.
        raise OverflowError(f"stats count {c!r} does not fit 64 bits")
    return <uint64_t>c  # truncated toward zero like int(); (-1, 0) gives 0


cdef inline Py_ssize_t _stats_size(uint64_t count) noexcept nogil:
    """The WindowStats message's length."""
    return _STATS_DOUBLES + 1 + _varint_size(count)


cdef inline Py_ssize_t _body_size(Py_ssize_t blob_size, Py_ssize_t time_size, bint has_rate,
                                  bint with_stats, Py_ssize_t stats_size) noexcept nogil:
    """A Sample message's length.  (Its parts are objects in memory and a
    few dozen bytes: the sum cannot wrap.)"""
    cdef Py_ssize_t body = blob_size + _DOUBLE_FIELD + time_size
    if has_rate:
        body += _DOUBLE_FIELD
    if with_stats:
        body += 1 + _varint_size(stats_size) + stats_size
    return body


def encode_samples(label_blobs, const int64_t[::1] idx not None,
                   const double[::1] value not None, const double[::1] rate not None,
                   stats, bytes time_field not None):
    """Concatenated ``MetricFamily.samples`` entries for series ``idx``.

    Same contract and bytes as ``kernels_py.encode_samples``, for
    ``label_blobs`` a list of bytes (another sequence is copied to one),
    ``idx`` an int64 buffer (``array("q")``), ``value``/``rate`` double
    buffers, ``stats`` None or a double buffer of ``STATS_WIDTH`` per series
    and ``time_field`` bytes.  Raises, before writing anything: ValueError
    when ``rate``, ``label_blobs`` or ``stats`` has fewer series than
    ``value``; IndexError for an ``idx`` entry outside ``range(len(value))``
    (negative ones included); TypeError for a label blob that is not bytes;
    ValueError for a selected series' count that is NaN or <= -1 and
    OverflowError for one that is infinite or >= 2**64 (where the twin's
    ``int()`` and ``varint`` fail, or write an over-long varint).  Holds the
    GIL throughout; the columns must not change meanwhile (RuntimeError).
    """
    if not _DOUBLES_LITTLE_ENDIAN:
        raise NotImplementedError("encode_samples copies doubles as they lie in memory, "
                                  "which needs a little-endian host; use kernels_py")
    if type(label_blobs) is not list:
        label_blobs = list(label_blobs)
    cdef Py_ssize_t n = value.shape[0]
    if rate.shape[0] < n:
        raise _short("rate", rate.shape[0], f"len(value) = {n}")
    if len(label_blobs) < n:
        raise _short("label_blobs", len(label_blobs), f"len(value) = {n}")
    cdef const double[::1] st
    cdef bint with_stats = stats is not None
    if with_stats:
        st = stats
        if st.shape[0] // _WIDTH < n:
            raise _short("stats", st.shape[0], f"len(value) * STATS_WIDTH = {n} * {_WIDTH}")

    cdef Py_ssize_t m = idx.shape[0], j, i, body, stats_size = 0, total = 0
    cdef Py_ssize_t time_size = PyBytes_GET_SIZE(time_field)
    cdef object blob
    for j in range(m):  # validate, and size each sample
        if not 0 <= idx[j] < n:
            raise IndexError(f"idx[{j}] = {idx[j]} is not a series: needs 0 <= i < {n}")
        i = <Py_ssize_t>idx[j]
        blob = <object>PyList_GET_ITEM(label_blobs, i)
        if not PyBytes_Check(blob):
            raise TypeError(f"label_blobs[{i}] must be bytes, not {type(blob).__name__}")
        if with_stats:
            stats_size = _stats_size(_count(st[i * _WIDTH + _WIDTH - 1]))
        body = _body_size(PyBytes_GET_SIZE(blob), time_size, rate[i] == rate[i], with_stats,
                          stats_size)
        body += 1 + _varint_size(body)
        if body > PY_SSIZE_T_MAX - total:
            raise MemoryError("encoded samples would not fit one bytes object")
        total += body

    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    cdef char *end = p + total
    cdef const char *time_data = PyBytes_AS_STRING(time_field)
    cdef uint64_t count = 0
    cdef Py_ssize_t o = 0, f, blob_size
    cdef bint has_rate
    for j in range(m):  # write: the same walk, every check already passed
        i = <Py_ssize_t>idx[j]
        blob = <object>PyList_GET_ITEM(label_blobs, i)
        blob_size = PyBytes_GET_SIZE(blob)
        has_rate = rate[i] == rate[i]
        if with_stats:
            o = i * _WIDTH
            count = _count(st[o + _WIDTH - 1])
            stats_size = _stats_size(count)
        body = _body_size(blob_size, time_size, has_rate, with_stats, stats_size)
        if 1 + _varint_size(body) + body > end - p:
            raise RuntimeError("encode_samples: a column changed while it was read")
        p[0] = 0x12
        p = _put_varint(p + 1, body)
        memcpy(p, PyBytes_AS_STRING(blob), blob_size)
        p += blob_size
        p = _put_double(p, 0x11, &value[i])
        if has_rate:
            p = _put_double(p, 0x19, &rate[i])
        memcpy(p, time_data, time_size)
        p += time_size
        if with_stats:
            p[0] = 0x2A
            p = _put_varint(p + 1, stats_size)
            for f in range(7):
                p = _put_double(p, <char>(0x09 + 8 * f), &st[o + f])
            p[0] = 0x40
            p = _put_varint(p + 1, count)
    if p != end:
        raise RuntimeError("encode_samples: a column changed while it was read")
    return out
