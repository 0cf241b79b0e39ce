# Included by _kernels.pyx: partial sorting of window values (no libc
# qsort callback); picks only the ranks window_stats reads.
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
