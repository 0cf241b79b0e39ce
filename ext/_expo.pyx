# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
"""Cython exposition kernels; ``agent/core/expo_py.py`` is their
specification and this module must write the very same bytes.

Inputs are validated once, with the GIL held, so the loops that follow never
read or write out of bounds; the loops then run without the GIL.  Values are
formatted as Python's ``repr`` does (shortest round-trip): integral values
below 1e16 by an integer fast path and decimals of up to 9 fraction digits
by a second one, each provably repr's text (see ``_put_value`` and
``_put_short_decimal``), every other finite value by the very function
``repr`` calls, ``PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0)``,
which needs the GIL for the moment it runs (CPython's dtoa keeps a shared
free list).
"""
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset, strlen

cdef extern from "math.h" nogil:
    bint isinf(double x)
    bint signbit(double x)
    double fabs(double x)
    double frexp(double x, int *exp)
    double ldexp(double x, int exp)

cdef extern from "Python.h":
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int *type) except NULL
    void PyMem_Free(void *p)
    int Py_DTSF_ADD_DOT_0

VALUE_MAX = 25

cdef enum:
    _VALUE_MAX = 25  # "-2.2250738585072014e-308" and a newline

cdef unsigned char _EMPTY[1]


cdef Py_ssize_t _put_repr(unsigned char *p, double v) except -1 with gil:
    """repr(v) for a finite double, as float.__repr__ makes it."""
    cdef char *s = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    cdef Py_ssize_t k = strlen(s)
    if k >= _VALUE_MAX:  # cannot happen for a double; never overrun
        PyMem_Free(s)
        raise ValueError(f"repr of {v!r} is longer than {_VALUE_MAX - 1} bytes")
    memcpy(p, s, k)
    PyMem_Free(s)
    return k


cdef double _POW10[10]
_POW10[:] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]


cdef inline Py_ssize_t _put_digits(unsigned char *p, uint64_t u, int width) noexcept nogil:
    """``u`` in decimal, zero-padded to ``width`` digits."""
    cdef unsigned char digits[24]
    cdef Py_ssize_t j = 0, k = 0
    while u > 0 or j < width:
        digits[j] = <unsigned char>(48 + u % 10)
        u //= 10
        j += 1
    while j > 0:
        j -= 1
        p[k] = digits[j]
        k += 1
    return k


cdef inline Py_ssize_t _put_short_decimal(unsigned char *p, double v) noexcept nogil:
    """repr(v) for a value with at most 9 decimals (12345.67, 0.35, 45.5,
    CPU seconds counted in ticks), or 0 when this cannot prove it (dtoa then).

    repr writes ``1e-4 <= |v| < 1e16`` without exponent, with the fewest
    fraction digits ``d`` that read back as ``v`` (the fewest significant
    digits, the integer part being fixed), the closest such if several.  For
    ``d = 1, 2, ...``: let ``n`` be the integer nearest ``y = |v| * 10**d``
    (computed below 2**50: off by at most 1/16).  If ``y`` is within 1/4 of
    ``n``, ``n`` is the only candidate near enough, and ``n / 10**d`` (exact
    operands, so correctly rounded, as strtod reads the text) says whether it
    reads back.  If ``y`` is farther, no ``d``-digit decimal reads back as
    long as ``10**-d`` is at least 8 units in the last place (every candidate
    is then more than half a unit away): past that point, give up.
    """
    cdef double a = fabs(v), ulp, y, scale
    cdef int e, d
    cdef uint64_t n
    cdef Py_ssize_t k = 0
    if not (1e-4 <= a < 4294967296.0):
        return 0
    frexp(a, &e)  # a in [2**(e-1), 2**e): the wider gap to a neighbour is 2**(e-53)
    ulp = ldexp(1.0, e - 53)
    for d in range(1, 10):
        scale = _POW10[d]
        if 1.0 / scale < 8.0 * ulp:
            return 0
        y = a * scale
        if y >= 1125899906842624.0:  # 2**50
            return 0
        n = <uint64_t>(y + 0.5)
        if fabs(y - <double>n) < 0.25:
            if <double>n / scale == a:
                if signbit(v):
                    p[0] = b'-'
                    k = 1
                k += _put_digits(p + k, n // <uint64_t>scale, 1)
                p[k] = b'.'
                k += 1
                return k + _put_digits(p + k, n % <uint64_t>scale, d)
    return 0


cdef inline Py_ssize_t _put_value(unsigned char *p, double v) except -1 nogil:
    """``format_value(v)`` of the twin for a value that is not NaN.

    An integral ``|v| < 1e16`` is written as its integer and ``.0``: repr
    writes a finite double without an exponent when its decimal exponent is
    below 16, with the shortest digits that round back to it; for an
    integer below 2**53 no other integer lies within half a unit, and in
    [2**53, 1e16) the doubles are the even integers, whose half-unit
    neighbours are odd and so never a shorter (zero-padded) digit string.
    """
    cdef unsigned char digits[24]
    cdef int64_t iv
    cdef uint64_t u
    cdef Py_ssize_t k = 0, j = 0
    if isinf(v):
        memcpy(p, b"+Inf" if v > 0 else b"-Inf", 4)
        return 4
    if -1e16 < v < 1e16:
        iv = <int64_t>v
        if <double>iv == v:
            if signbit(v):  # -0.0 too
                p[0] = b'-'
                k = 1
            u = <uint64_t>(-iv if iv < 0 else iv)
            while True:
                digits[j] = <unsigned char>(48 + u % 10)
                u //= 10
                j += 1
                if u == 0:
                    break
            while j > 0:
                j -= 1
                p[k] = digits[j]
                k += 1
            p[k] = b'.'
            p[k + 1] = b'0'
            return k + 2
    k = _put_short_decimal(p, v)
    if k:
        return k
    return _put_repr(p, v)


cdef int _check_offsets(str name, const int64_t[::1] off, Py_ssize_t count,
                        Py_ssize_t blob_len) except -1:
    cdef Py_ssize_t k
    if off.shape[0] != count + 1:
        raise ValueError(f"{name} has {off.shape[0]} entries, needs {count + 1}")
    if off[0] < 0 or off[count] > blob_len:
        raise ValueError(f"{name} runs outside its blob of {blob_len} bytes")
    for k in range(count):
        if off[k + 1] < off[k]:
            raise ValueError(f"{name} decreases at entry {k + 1}")
    return 0


cdef inline const unsigned char *_base(const unsigned char[::1] blob) noexcept:
    return &blob[0] if blob.shape[0] else _EMPTY


def render_bound(Py_ssize_t headers_len, Py_ssize_t prefixes_len, Py_ssize_t series):
    return headers_len + prefixes_len + series * _VALUE_MAX


def render_families(const double[::1] values not None, const int64_t[::1] order not None,
                    const int64_t[::1] fam_start not None,
                    const unsigned char[::1] prefixes not None,
                    const int64_t[::1] prefix_off not None,
                    const unsigned char[::1] headers not None,
                    const int64_t[::1] header_off not None,
                    unsigned char[::1] out not None, int64_t[::1] spans not None):
    """Same contract and bytes as ``expo_py.render_families``."""
    cdef Py_ssize_t n = values.shape[0], m = order.shape[0]
    cdef Py_ssize_t families = fam_start.shape[0] - 1, f, j
    if families < 0:
        raise ValueError("fam_start needs at least one entry")
    if fam_start[0] != 0 or fam_start[families] != m:
        raise ValueError(f"fam_start must run from 0 to len(order) = {m}")
    for f in range(families):
        if fam_start[f + 1] < fam_start[f]:
            raise ValueError(f"fam_start decreases at entry {f + 1}")
    _check_offsets("header_off", header_off, families, headers.shape[0])
    _check_offsets("prefix_off", prefix_off, m, prefixes.shape[0])
    for j in range(m):
        if not 0 <= order[j] < n:
            raise ValueError(f"order[{j}] = {order[j]} is not a series: needs 0 <= i < {n}")
    if spans.shape[0] < families + 1:
        raise ValueError(f"spans has {spans.shape[0]} entries, needs {families + 1}")
    cdef Py_ssize_t need = (header_off[families] - header_off[0]
                            + prefix_off[m] - prefix_off[0] + m * _VALUE_MAX)
    if out.shape[0] < need:
        raise ValueError(f"out has {out.shape[0]} bytes, needs {need}")

    cdef const unsigned char *hd = _base(headers)
    cdef const unsigned char *px = _base(prefixes)
    cdef unsigned char *o = &out[0] if out.shape[0] else _EMPTY
    cdef Py_ssize_t pos
    with nogil:
        pos = _render(values, order, fam_start, px, prefix_off, hd, header_off, o, spans, families)
    return pos


cdef Py_ssize_t _render(const double[::1] values, const int64_t[::1] order,
                        const int64_t[::1] fam_start, const unsigned char *px,
                        const int64_t[::1] prefix_off, const unsigned char *hd,
                        const int64_t[::1] header_off, unsigned char *o, int64_t[::1] spans,
                        Py_ssize_t families) except -1 nogil:
    """render_families' loop, once its input is validated, without the GIL
    (``_put_repr`` takes it for a value neither fast path can write: taking
    it per such value costs less than the value's repr itself)."""
    cdef Py_ssize_t pos = 0, start, length, f, j
    cdef double v
    cdef bint wrote
    for f in range(families):
        spans[f] = start = pos
        length = header_off[f + 1] - header_off[f]
        memcpy(o + pos, hd + header_off[f], length)
        pos += length
        wrote = False
        for j in range(fam_start[f], fam_start[f + 1]):
            v = values[order[j]]
            if v != v:  # no sample: no line
                continue
            length = prefix_off[j + 1] - prefix_off[j]
            memcpy(o + pos, px + prefix_off[j], length)
            pos += length
            pos += _put_value(o + pos, v)
            o[pos] = b'\n'
            pos += 1
            wrote = True
        if not wrote:
            pos = start
    spans[families] = pos
    return pos

