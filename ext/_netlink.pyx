# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
"""Cython ``RTM_GETSTATS`` dump parser; ``agent/core/netlink_py.py`` is its
specification (the rules are in its docstring) and this module must return
the same arrays and raise the same exception types.

Two passes over the bytes without the GIL and without a Python object per
message: the first validates every length and counts the rows, then both
arrays are allocated at their final size, and the second fills them.  Every
read is checked against the buffer's end (or its message's) with lengths
read once into locals, and the fill pass writes at most the rows the first
one counted, so even a bytearray another thread rewrites meanwhile cannot
make it read or write out of bounds (it then raises RuntimeError).  Fields
are read with memcpy: the messages are 4-byte aligned at best, the u64
counters after a 4-byte attribute header never 8-byte aligned.
"""
from cpython cimport array
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import array as _array

from agent.core.netlink_py import STATS_FIELDS, NetlinkError, netlink_error

cdef enum:
    _HDR = 16  # struct nlmsghdr
    _IFSM = 12  # struct if_stats_msg
    _NLA = 4  # struct nlattr
    _WIDTH = 25  # u64 counters in struct rtnl_link_stats64
    _NLMSG_ERROR = 2
    _NLMSG_DONE = 3
    _RTM_NEWSTATS = 92
    _IFLA_STATS_LINK_64 = 1
    _NLA_TYPE_MASK = 0x3FFF

assert len(STATS_FIELDS) == _WIDTH

cdef enum _Status:
    _OK, _HDR_SHORT, _LEN_SMALL, _LEN_OVER, _ERR_SHORT, _NETLINK, _IFSM_SHORT
    _NLA_SHORT, _NLA_SMALL, _NLA_OVER, _CHANGED

ctypedef struct _Walk:
    int status
    Py_ssize_t rows
    Py_ssize_t at  # where the problem is
    int64_t a, b  # its numbers (lengths, errno, message type)

cdef array.array _INTS = _array.array("i")
cdef array.array _U64S = _array.array("Q")


cdef inline uint32_t _u32(const unsigned char *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline int32_t _i32(const unsigned char *p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t _u16(const unsigned char *p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline void _fail(_Walk *w, int status, Py_ssize_t at, int64_t a, int64_t b,
                       Py_ssize_t rows) noexcept nogil:
    w.status = status
    w.at = at
    w.a = a
    w.b = b
    w.rows = rows


cdef void _walk(const unsigned char *p, Py_ssize_t end, int32_t *ifindex,
                uint64_t *counters, Py_ssize_t cap, _Walk *w) noexcept nogil:
    """Validate ``p[:end]`` and count its rows into ``w``; with ``counters``
    not NULL also fill up to ``cap`` rows of ``ifindex`` and ``counters``."""
    cdef Py_ssize_t off = 0, stop, attr, rows = 0, n
    cdef uint32_t length
    cdef uint16_t kind, nla_len
    cdef int32_t code
    cdef bint found
    while off < end:
        if end - off < _HDR:
            _fail(w, _HDR_SHORT, off, end - off, 0, rows)
            return
        length = _u32(p + off)
        kind = _u16(p + off + 4)
        if length < _HDR:
            _fail(w, _LEN_SMALL, off, length, 0, rows)
            return
        if length > end - off:
            _fail(w, _LEN_OVER, off, length, end - off, rows)
            return
        if kind == _NLMSG_DONE or kind == _NLMSG_ERROR:
            if kind == _NLMSG_ERROR and length < _HDR + 4:
                _fail(w, _ERR_SHORT, off, length, 0, rows)
                return
            if length >= _HDR + 4:
                code = _i32(p + off + _HDR)
                if code < 0:
                    _fail(w, _NETLINK, off, -<int64_t>code, kind, rows)
                    return
            if kind == _NLMSG_DONE:
                break
        elif kind == _RTM_NEWSTATS:
            if length < _HDR + _IFSM:
                _fail(w, _IFSM_SHORT, off + _HDR, length - _HDR, 0, rows)
                return
            stop = off + length
            attr = off + _HDR + _IFSM
            found = False
            while attr < stop:
                if stop - attr < _NLA:
                    _fail(w, _NLA_SHORT, attr, stop - attr, 0, rows)
                    return
                nla_len = _u16(p + attr)
                if nla_len < _NLA:
                    _fail(w, _NLA_SMALL, attr, nla_len, 0, rows)
                    return
                if nla_len > stop - attr:
                    _fail(w, _NLA_OVER, attr, nla_len, stop - attr, rows)
                    return
                if not found and (_u16(p + attr + 2) & _NLA_TYPE_MASK) == _IFLA_STATS_LINK_64:
                    found = True
                    if counters != NULL:
                        if rows >= cap:
                            _fail(w, _CHANGED, attr, 0, 0, rows)
                            return
                        n = (nla_len - _NLA) // 8
                        if n > _WIDTH:
                            n = _WIDTH
                        memcpy(counters + rows * _WIDTH, p + attr + _NLA, n * 8)
                        memset(counters + rows * _WIDTH + n, 0, (_WIDTH - n) * 8)
                        ifindex[rows] = _i32(p + off + _HDR + 4)
                    rows += 1
                attr += (nla_len + 3) & ~3
        off += (length + 3) & ~3
    _fail(w, _OK, off, 0, 0, rows)


cdef object _error(_Walk *w):
    """The exception of a failed walk, with the twin's type and message."""
    cdef Py_ssize_t at = w.at
    if w.status == _HDR_SHORT:
        return ValueError(f"netlink header cut short at offset {at}: {w.a} of {_HDR} bytes")
    if w.status == _LEN_SMALL:
        return ValueError(f"nlmsg_len {w.a} < {_HDR} at offset {at}")
    if w.status == _LEN_OVER:
        return ValueError(f"message at offset {at} claims {w.a} bytes, "
                          f"{w.b} left in the buffer")
    if w.status == _ERR_SHORT:
        return ValueError(f"NLMSG_ERROR at offset {at} cut short: {w.a} bytes")
    if w.status == _NETLINK:
        what = "dump failed" if w.b == _NLMSG_DONE else "netlink error"
        return netlink_error(w.a, f"{what} (message at offset {at})")
    if w.status == _IFSM_SHORT:
        return ValueError(f"if_stats_msg cut short at offset {at}: {w.a} of {_IFSM} bytes")
    if w.status == _NLA_SHORT:
        return ValueError(f"attribute header cut short at offset {at}: {w.a} of {_NLA} bytes")
    if w.status == _NLA_SMALL:
        return ValueError(f"nla_len {w.a} < {_NLA} at offset {at}")
    if w.status == _NLA_OVER:
        return ValueError(f"attribute at offset {at} claims {w.a} bytes, "
                          f"{w.b} left in its message")
    return RuntimeError(f"buffer changed while being parsed (offset {at})")


def parse_stats_dump(buf):
    """Rows of a ``RTM_GETSTATS`` dump: ``(ifindex array('i'), counters
    array('Q'))``; same contract as ``netlink_py.parse_stats_dump``."""
    cdef const unsigned char[::1] view
    if isinstance(buf, (bytes, bytearray)):
        view = buf
    else:
        view = memoryview(buf).cast("B")
    cdef Py_ssize_t end = view.shape[0]
    cdef array.array ifindex, counters
    if end == 0:
        return array.clone(_INTS, 0, False), array.clone(_U64S, 0, False)
    cdef const unsigned char *p = &view[0]
    cdef _Walk w
    with nogil:
        _walk(p, end, NULL, NULL, 0, &w)
    if w.status != _OK:
        raise _error(&w)
    cdef Py_ssize_t rows = w.rows
    ifindex = array.clone(_INTS, rows, False)
    counters = array.clone(_U64S, rows * _WIDTH, False)
    if rows:
        with nogil:
            _walk(p, end, <int32_t *>ifindex.data.as_ints,
                  <uint64_t *>counters.data.as_ulonglongs, rows, &w)
        if w.status != _OK or w.rows != rows:
            raise _error(&w) if w.status != _OK else RuntimeError(
                "buffer changed while being parsed")
    return ifindex, counters


def last_message_type(buf, Py_ssize_t start, Py_ssize_t end):
    """``last_message_type`` of the twin: a walk over message headers only."""
    cdef const unsigned char[::1] view = buf
    if not (0 <= start <= end <= view.shape[0]):
        raise ValueError(f"range {start}:{end} outside a buffer of {view.shape[0]} bytes")
    cdef const unsigned char *p = &view[0] if view.shape[0] else NULL
    cdef Py_ssize_t off = start
    cdef uint32_t length
    cdef long last = -1
    with nogil:
        while off < end:
            if end - off < 16:
                last = -1
                break
            length = _u32(p + off)
            last = _u16(p + off + 4)
            if length < 16 or length > <uint32_t>(end - off):
                last = -1
                break
            off += (length + 3) & ~(<Py_ssize_t>3)
    return last
