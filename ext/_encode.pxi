# Included by _kernels.pyx: protobuf wire encoding of samples (encode_samples).
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


# -- the same, over packed labels and without the GIL --------------------------
# GetMetrics' path: every series' labels in one bytes object with int64
# offsets, so that both passes read typed memory only and run without the GIL
# (other API calls and scrapes go on meanwhile); only the allocation of the
# result takes it.  The caller holds the block's lock, so ingest cannot change
# the columns meanwhile; the write pass still checks the room left.

cdef enum:
    _BAD_NONE = 0
    _BAD_IDX = 1
    _BAD_OFF = 2
    _BAD_COUNT = 3
    _BAD_SIZE = 4


cdef inline bint _count_ok(double c) noexcept nogil:
    return c == c and not isinf(c) and c > -1.0 and c < 18446744073709551616.0


def encode_samples_packed(const unsigned char[::1] labels not None,
                          const int64_t[::1] label_off not None,
                          const int64_t[::1] idx not None,
                          const double[::1] value not None, const double[::1] rate not None,
                          stats, bytes time_field not None):
    """``encode_samples`` with series ``i``'s labels at
    ``labels[label_off[i]:label_off[i + 1]]``: same contract and bytes as
    ``kernels_py.encode_samples_packed``.  Both passes run without the GIL."""
    if not _DOUBLES_LITTLE_ENDIAN:
        raise NotImplementedError("encode_samples copies doubles as they lie in memory, "
                                  "which needs a little-endian host; use kernels_py")
    cdef Py_ssize_t n = value.shape[0]
    if rate.shape[0] < n:
        raise _short("rate", rate.shape[0], f"len(value) = {n}")
    if label_off.shape[0] < n + 1:
        raise _short("label_off", label_off.shape[0], f"len(value) + 1 = {n + 1}")
    cdef const double[::1] st
    cdef bint with_stats = stats is not None
    if with_stats:
        st = stats
        if st.shape[0] // _WIDTH < n:
            raise _short("stats", st.shape[0], f"len(value) * STATS_WIDTH = {n} * {_WIDTH}")
    else:
        st = value  # never read

    cdef Py_ssize_t m = idx.shape[0], j = 0, i, body, stats_size = 0, total = 0
    cdef Py_ssize_t blob_len = labels.shape[0]
    cdef Py_ssize_t time_size = PyBytes_GET_SIZE(time_field)
    cdef int bad = _BAD_NONE
    with nogil:  # validate, and size each sample
        for j in range(m):
            if not 0 <= idx[j] < n:
                bad = _BAD_IDX
                break
            i = <Py_ssize_t>idx[j]
            if not 0 <= label_off[i] <= label_off[i + 1] <= blob_len:
                bad = _BAD_OFF
                break
            if with_stats:
                if not _count_ok(st[i * _WIDTH + _WIDTH - 1]):
                    bad = _BAD_COUNT
                    break
                stats_size = _stats_size(<uint64_t>st[i * _WIDTH + _WIDTH - 1])
            body = _body_size(label_off[i + 1] - label_off[i], time_size, rate[i] == rate[i],
                              with_stats, stats_size)
            body += 1 + _varint_size(body)
            if body > PY_SSIZE_T_MAX - total:
                bad = _BAD_SIZE
                break
            total += body
    if bad == _BAD_IDX:
        raise IndexError(f"idx[{j}] = {idx[j]} is not a series: needs 0 <= i < {n}")
    if bad == _BAD_OFF:
        raise ValueError(f"label_off of series {idx[j]} runs outside labels or decreases")
    if bad == _BAD_COUNT:
        _count(st[idx[j] * _WIDTH + _WIDTH - 1])  # raises the twin's exception
    if bad == _BAD_SIZE:
        raise MemoryError("encoded samples would not fit one bytes object")

    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    cdef char *end = p + total
    cdef const char *time_data = PyBytes_AS_STRING(time_field)
    cdef const unsigned char *lab = &labels[0] if blob_len else <const unsigned char *>time_data
    cdef uint64_t count = 0
    cdef Py_ssize_t o = 0, f, blob_size
    cdef bint has_rate, overrun = False
    with nogil:  # write: the same walk, every check already passed
        for j in range(m):
            i = <Py_ssize_t>idx[j]
            blob_size = label_off[i + 1] - label_off[i]
            has_rate = rate[i] == rate[i]
            if with_stats:
                o = i * _WIDTH
                count = <uint64_t>st[o + _WIDTH - 1]
                stats_size = _stats_size(count)
            body = _body_size(blob_size, time_size, has_rate, with_stats, stats_size)
            if 1 + _varint_size(body) + body > end - p:
                overrun = True
                break
            p[0] = 0x12
            p = _put_varint(p + 1, body)
            memcpy(p, lab + label_off[i], blob_size)
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
    if overrun or p != end:
        raise RuntimeError("encode_samples: a column changed while it was read")
    return out
