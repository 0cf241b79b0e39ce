# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
"""Cython packet header decoder and bounded flow table; ``agent/core/flows_py.py``
is its specification (every decoding and eviction rule is in its docstring)
and this module must give the same flows, counters, return values and
exception types.  docs/flows-kernel.md explains the design.

No Python object per packet: ``add_block`` walks a TPACKET_V3 block with the
GIL released, decodes each frame into a fixed 56-byte C key and accounts it
in an open-addressing table in C memory.  Every read is checked against the
end of the buffer (or of the captured frame) with lengths read once into
locals, so a block being rewritten meanwhile cannot make it read out of bounds.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

import os

from agent.core import flows_py
from agent.core.flows_py import checked

OK, TRUNCATED, MALFORMED = flows_py.OK, flows_py.TRUNCATED, flows_py.MALFORMED
DIR_IN, DIR_OUT = flows_py.DIR_IN, flows_py.DIR_OUT
PACKET_OUTGOING, VXLAN_PORT = flows_py.PACKET_OUTGOING, flows_py.VXLAN_PORT
MAX_FLOWS_LIMIT = flows_py.MAX_FLOWS_LIMIT

cdef enum:
    _OK = 0
    _TRUNC = 1
    _BAD = 2
    _VXLAN = 4789
    _BLOCK_DESC = 48  # struct tpacket_block_desc with its tpacket_hdr_v1
    _NUM_PKTS = 12
    _FIRST_PKT = 16
    _HDRLEN = 68  # TPACKET3_HDRLEN: tpacket3_hdr (48) + sockaddr_ll (20)
    _SNAPLEN = 12
    _WIRELEN = 16
    _STATUS = 20
    _MAC = 24
    _VLAN_TCI = 32
    _VLAN_TPID = 36
    _PKTTYPE = 58  # sockaddr_ll.sll_pkttype at TPACKET_ALIGN(48) + 10
    _OUTGOING = 4
    _VLAN_VALID = 0x10
    _TPID_VALID = 0x40
    _ETH_MACS = 12
    _KEY_WORDS = 7

assert (_OK, _TRUNC, _BAD, _VXLAN, _OUTGOING) == (OK, TRUNCATED, MALFORMED, VXLAN_PORT, PACKET_OUTGOING)
assert (_BLOCK_DESC, _HDRLEN, _PKTTYPE) == (flows_py.BLOCK_DESC_LEN, flows_py.TPACKET3_HDRLEN,
                                            flows_py.PKT_SLL_PKTTYPE)
assert (_VLAN_VALID, _TPID_VALID, _ETH_MACS) == (flows_py.TP_STATUS_VLAN_VALID,
                                               flows_py.TP_STATUS_VLAN_TPID_VALID, flows_py.ETH_MACS)

cdef uint64_t _U64MAX = 0xFFFFFFFFFFFFFFFF


ctypedef struct Key:  # 56 bytes, every unused byte zero: compared and hashed whole
    uint32_t ifindex
    uint32_t vni
    uint16_t vlan
    uint16_t ethertype
    uint16_t sport
    uint16_t dport
    uint8_t direction
    uint8_t proto
    uint8_t alen  # 0, 4 or 16
    uint8_t pad[5]
    uint8_t src[16]
    uint8_t dst[16]

ctypedef struct Entry:
    Key key
    uint64_t hash
    uint64_t packets
    uint64_t nbytes
    uint64_t seq

ctypedef struct Node:  # the eviction heap: bytes when pushed, creation order, entry
    uint64_t nbytes
    uint64_t seq
    uint32_t entry

ctypedef struct Pkt:  # one walked packet, kept for the headers list
    int64_t data
    uint32_t snaplen
    uint32_t wire
    uint16_t tpid  # the tag the kernel stripped, when tagged
    uint16_t tci
    uint8_t direction
    uint8_t tagged


# --- decoding (the rules are flows_py's) -----------------------------------

cdef inline uint16_t _be16(const uint8_t *p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef inline uint32_t _u32(const uint8_t *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef int _l4(const uint8_t *b, int64_t off, int64_t n, uint8_t proto, bint inner,
             Key *k) noexcept nogil:
    cdef int64_t vx
    cdef uint32_t vni
    cdef int status
    if proto == 6 or proto == 17:
        if off + 4 <= n:
            k.sport = _be16(b + off)
            k.dport = _be16(b + off + 2)
        if off + (20 if proto == 6 else 8) > n:
            return _TRUNC
        if proto == 17 and k.dport == _VXLAN and not inner:
            vx = off + 8
            if vx + 8 > n:
                return _TRUNC
            if b[vx] & 0x08:
                vni = (<uint32_t>b[vx + 4] << 16) | (<uint32_t>b[vx + 5] << 8) | b[vx + 6]
                status = _decode(b, vx + 8, n, True, k)
                k.vni = vni
                return status
        return _OK
    if proto == 1 or proto == 58:
        if off + 2 <= n:
            k.sport = b[off]
            k.dport = b[off + 1]
        return _TRUNC if off + 4 > n else _OK
    return _OK


cdef int _ipv4(const uint8_t *b, int64_t off, int64_t n, bint inner, Key *k) noexcept nogil:
    cdef int64_t hlen
    if off + 20 > n:
        return _TRUNC
    if b[off] >> 4 != 4 or (b[off] & 0x0F) < 5:
        return _BAD
    k.alen = 4
    memcpy(k.src, b + off + 12, 4)
    memcpy(k.dst, b + off + 16, 4)
    k.proto = b[off + 9]
    hlen = (b[off] & 0x0F) * 4
    if off + hlen > n:
        return _TRUNC
    if _be16(b + off + 6) & 0x1FFF:
        return _OK
    return _l4(b, off + hlen, n, k.proto, inner, k)


cdef inline bint _ext8(uint8_t nh) noexcept nogil:
    return nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140


cdef int _ipv6(const uint8_t *b, int64_t off, int64_t n, bint inner, Key *k) noexcept nogil:
    cdef uint8_t nh, ext
    if off + 40 > n:
        return _TRUNC
    if b[off] >> 4 != 6:
        return _BAD
    k.alen = 16
    memcpy(k.src, b + off + 8, 16)
    memcpy(k.dst, b + off + 24, 16)
    nh = b[off + 6]
    off += 40
    while True:  # each extension header is at least 8 bytes: at most n / 8 turns
        k.proto = nh
        if _ext8(nh) or nh == 51:
            if off + 2 > n:
                return _TRUNC
            ext = nh
            nh = b[off]
            off += (b[off + 1] + 2) * 4 if ext == 51 else (b[off + 1] + 1) * 8
        elif nh == 44:
            if off + 8 > n:
                return _TRUNC
            nh = b[off]
            if _be16(b + off + 2) >> 3:
                k.proto = nh
                return _OK
            off += 8
        else:
            return _l4(b, off, n, nh, inner, k)


cdef int _decode(const uint8_t *b, int64_t off, int64_t n, bint inner, Key *k) noexcept nogil:
    cdef uint16_t etype
    cdef bint first = True
    k.ethertype = 0
    k.alen = 0
    memset(k.src, 0, 32)
    k.proto = 0
    k.sport = 0
    k.dport = 0
    if off + 14 > n:
        return _TRUNC
    etype = _be16(b + off + 12)
    off += 14
    while etype == 0x8100 or etype == 0x88A8 or etype == 0x9100:
        k.ethertype = etype
        if off + 4 > n:
            return _TRUNC
        if first and not inner:
            k.vlan = _be16(b + off) & 0x0FFF
        first = False
        etype = _be16(b + off + 2)
        off += 4
    k.ethertype = etype
    if etype == 0x0800:
        return _ipv4(b, off, n, inner, k)
    if etype == 0x86DD:
        return _ipv6(b, off, n, inner, k)
    return _OK


cdef int _parse(const uint8_t *b, int64_t n, Key *k) noexcept nogil:
    """Decode a whole frame into ``k`` (zeroed first but for ifindex/direction)."""
    cdef int status
    k.vni = 0
    k.vlan = 0
    memset(k.pad, 0, 5)
    status = _decode(b, 0, n, False, k)
    if status == _BAD:
        k.alen = 0
        memset(k.src, 0, 32)
        k.proto = 0
        k.sport = 0
        k.dport = 0
    return status


cdef tuple _key_fields(const Key *k):
    """(vlan, vni, ethertype, src, dst, proto, sport, dport)."""
    return (k.vlan, k.vni, k.ethertype, PyBytes_FromStringAndSize(<const char *>k.src, k.alen),
            PyBytes_FromStringAndSize(<const char *>k.dst, k.alen), k.proto, k.sport, k.dport)


cdef int _get_buffer(object obj, Py_buffer *view) except -1:
    """Any C-contiguous buffer as bytes; TypeError otherwise, like the twin's cast."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except BufferError as exc:
        raise TypeError(str(exc)) from None
    return 0


def parse_frame(frame):
    """(status, vlan, vni, ethertype, src, dst, proto, sport, dport)."""
    cdef Py_buffer view
    cdef Key k
    cdef int status
    _get_buffer(frame, &view)
    try:
        memset(&k, 0, sizeof(Key))
        status = _parse(<const uint8_t *>view.buf, view.len, &k)
    finally:
        PyBuffer_Release(&view)
    return (status,) + _key_fields(&k)


# --- the flow table ---------------------------------------------------------

cdef inline uint64_t _sat_add(uint64_t a, uint64_t b) noexcept nogil:
    cdef uint64_t r = a + b
    return _U64MAX if r < a else r


cdef inline bint _before(const Node *a, const Node *b) noexcept nogil:
    return a.nbytes < b.nbytes or (a.nbytes == b.nbytes and a.seq < b.seq)


include "_flows_table.pxi"
