"""Pure-Python twin of the ``RTM_GETSTATS`` dump parser in ``ext/_netlink.pyx``.

This file is the specification: the Cython module must return the same
arrays for every input and raise the same exception type for every input it
refuses (``tests/test_netlink_parser.py`` holds them to it; messages may
differ).  The wire format, in host byte order (netlink is host-endian)::

    struct nlmsghdr      { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags;
                           __u32 nlmsg_seq; __u32 nlmsg_pid; };           /* 16 */
    struct if_stats_msg  { __u8 family; __u8 pad1; __u16 pad2;
                           __u32 ifindex; __u32 filter_mask; };            /* 12 */
    struct nlattr        { __u16 nla_len; __u16 nla_type; };  /* 4, then payload,
                                                                 padded to 4 */
    struct nlmsgerr      { int error; struct nlmsghdr msg; ... };

Rules of ``parse_stats_dump(buf)``, over messages at 4-byte aligned offsets:

* ``RTM_NEWSTATS`` (92) with an ``IFLA_STATS_LINK_64`` (1) attribute is one
  row: its ifindex and the 25 counters of ``struct rtnl_link_stats64``.  An
  older kernel's shorter struct leaves the missing trailing counters 0; bytes
  beyond the 25 counters (a newer kernel's) are ignored.  The first such
  attribute of a message counts; other attributes (nested ones included) are
  skipped.  A message without it yields **no row** (not a row of zeros).
* ``NLMSG_DONE`` (3) ends the dump: parsing stops there, whatever follows.
  When it carries a negative errno (the kernel's dump failed part way) that
  is a :class:`NetlinkError`, like ``NLMSG_ERROR``.
* ``NLMSG_ERROR`` (2) with a negative error raises :class:`NetlinkError`;
  with 0 (an acknowledgement) it is skipped, as are ``NLMSG_NOOP`` (1) and
  every other type.
* Malformed input raises ``ValueError`` naming the byte offset: a header cut
  short or with ``nlmsg_len < 16``, a message running past the buffer, an
  ``if_stats_msg`` or error code cut short, an attribute header cut short or
  with ``nla_len < 4`` or running past its message.  The first problem in
  buffer order wins, so a malformed message after an error message is never
  reported (neither is anything after ``NLMSG_DONE``).
"""
from __future__ import annotations

import os
import struct
from array import array

STATS_FIELDS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
    "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
    "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
    "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
    "rx_nohandler", "rx_otherhost_dropped",
)
WIDTH = len(STATS_FIELDS)

NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_NEWSTATS, RTM_GETSTATS = 92, 94
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP = 0x1, 0x2, 0x300
IFLA_STATS_LINK_64 = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IF_STATS_MSG = struct.Struct("=BBHII")  # family, pad1, pad2, ifindex, filter_mask
NLATTR = struct.Struct("=HH")  # len, type
ERRNO = struct.Struct("=i")
_IFINDEX = struct.Struct("=i")  # if_stats_msg.ifindex (at +4), an int in the kernel
_COUNTERS = [struct.Struct(f"={n}Q") for n in range(WIDTH + 1)]
_ZEROS = [[0] * n for n in range(WIDTH + 1)]
_HDR, _IFSM, _NLA = NLMSGHDR.size, IF_STATS_MSG.size, NLATTR.size


class NetlinkError(OSError):
    """The kernel answered with an error: ``errno`` is positive (``EPERM``...)."""


def align(n: int) -> int:
    """``NLMSG_ALIGN`` / ``NLA_ALIGN``: round up to a multiple of 4."""
    return (n + 3) & ~3


def netlink_error(errno: int, what: str) -> NetlinkError:
    """The exception both implementations raise for a negative error code."""
    try:
        text = os.strerror(errno)
    except (OverflowError, ValueError):  # -INT_MIN does not fit a C int
        text = f"error {errno}"
    return NetlinkError(errno, f"{what}: {text}")


def parse_stats_dump(buf) -> tuple[array, array]:
    """Rows of a ``RTM_GETSTATS`` dump: ``(ifindex array('i'), counters
    array('Q'))``, counters row-major with ``len(STATS_FIELDS)`` per row.

    ``buf`` is any bytes-like object (the concatenated datagrams of one or
    more ``recv`` calls); see the module docstring for the rules.
    """
    mv = memoryview(buf).cast("B")
    end = len(mv)
    ifindex = array("i")
    counters = array("Q")
    off = 0
    while off < end:
        if end - off < _HDR:
            raise ValueError(f"netlink header cut short at offset {off}: "
                             f"{end - off} of {_HDR} bytes")
        length, kind = NLMSGHDR.unpack_from(mv, off)[:2]
        if length < _HDR:
            raise ValueError(f"nlmsg_len {length} < {_HDR} at offset {off}")
        if length > end - off:
            raise ValueError(f"message at offset {off} claims {length} bytes, "
                             f"{end - off} left in the buffer")
        if kind == NLMSG_DONE or kind == NLMSG_ERROR:
            if kind == NLMSG_ERROR and length < _HDR + 4:
                raise ValueError(f"NLMSG_ERROR at offset {off} cut short: {length} bytes")
            if length >= _HDR + 4:
                code = ERRNO.unpack_from(mv, off + _HDR)[0]
                if code < 0:
                    what = "dump failed" if kind == NLMSG_DONE else "netlink error"
                    raise netlink_error(-code, f"{what} (message at offset {off})")
            if kind == NLMSG_DONE:
                break
        elif kind == RTM_NEWSTATS:
            _row(mv, off, length, ifindex, counters)
        off += align(length)
    return ifindex, counters


def _row(mv, off: int, length: int, ifindex: array, counters: array) -> None:
    """Append the row of the RTM_NEWSTATS message at ``off``, if it has one."""
    if length < _HDR + _IFSM:
        raise ValueError(f"if_stats_msg cut short at offset {off + _HDR}: "
                         f"{length - _HDR} of {_IFSM} bytes")
    stop = off + length
    attr = off + _HDR + _IFSM
    found = False
    while attr < stop:
        if stop - attr < _NLA:
            raise ValueError(f"attribute header cut short at offset {attr}: "
                             f"{stop - attr} of {_NLA} bytes")
        nla_len, nla_type = NLATTR.unpack_from(mv, attr)
        if nla_len < _NLA:
            raise ValueError(f"nla_len {nla_len} < {_NLA} at offset {attr}")
        if nla_len > stop - attr:
            raise ValueError(f"attribute at offset {attr} claims {nla_len} bytes, "
                             f"{stop - attr} left in its message")
        if not found and nla_type & NLA_TYPE_MASK == IFLA_STATS_LINK_64:
            found = True
            n = min((nla_len - _NLA) // 8, WIDTH)
            counters.extend(_COUNTERS[n].unpack_from(mv, attr + _NLA))
            counters.extend(_ZEROS[WIDTH - n])
            ifindex.append(_IFINDEX.unpack_from(mv, off + _HDR + 4)[0])
        attr += align(nla_len)


# -- encoders: the request, and synthetic dumps for tests and benchmarks ------

def last_message_type(buf, start: int, end: int) -> int:
    """Type of the last message of the datagram ``buf[start:end]`` (how a
    dump reader knows the datagram ended the dump); -1 when the message
    lengths do not add up or the range is empty.  Raises ValueError when the
    range is outside ``buf``."""
    if not 0 <= start <= end <= len(buf):
        raise ValueError(f"range {start}:{end} outside a buffer of {len(buf)} bytes")
    off, last = start, -1
    while off < end:
        if end - off < NLMSGHDR.size:
            return -1
        length, last = NLMSGHDR.unpack_from(buf, off)[:2]
        if length < NLMSGHDR.size or length > end - off:
            return -1
        off += align(length)
    return last


def pack_message(kind: int, payload: bytes, *, flags: int = 0, seq: int = 0,
                 pid: int = 0) -> bytes:
    """One netlink message, padded to 4 bytes."""
    length = _HDR + len(payload)
    return (NLMSGHDR.pack(length, kind, flags, seq, pid) + payload
            + b"\0" * (align(length) - length))


def pack_attr(nla_type: int, payload: bytes) -> bytes:
    length = _NLA + len(payload)
    return NLATTR.pack(length, nla_type) + payload + b"\0" * (align(length) - length)


def pack_stats(ifindex: int, counters, *, seq: int = 0, pid: int = 0,
               before: bytes = b"", after: bytes = b"") -> bytes:
    """An ``RTM_NEWSTATS`` message with ``counters`` (any number of u64, 25
    on current kernels) between the attribute bytes ``before`` and ``after``."""
    body = (IF_STATS_MSG.pack(0, 0, 0, ifindex & 0xFFFFFFFF, 1 << (IFLA_STATS_LINK_64 - 1))
            + before
            + pack_attr(IFLA_STATS_LINK_64, struct.pack(f"={len(counters)}Q", *counters))
            + after)
    return pack_message(RTM_NEWSTATS, body, flags=NLM_F_MULTI, seq=seq, pid=pid)


def pack_done(*, seq: int = 0, pid: int = 0, error: int = 0) -> bytes:
    return pack_message(NLMSG_DONE, ERRNO.pack(error), flags=NLM_F_MULTI, seq=seq, pid=pid)


def pack_error(error: int, *, seq: int = 0, pid: int = 0) -> bytes:
    """``NLMSG_ERROR`` (``error`` negative, or 0 for an acknowledgement)
    quoting an empty request header."""
    return pack_message(NLMSG_ERROR, ERRNO.pack(error) + NLMSGHDR.pack(_HDR, 0, 0, seq, pid),
                        seq=seq, pid=pid)


def pack_getstats_request(seq: int, *, pid: int = 0) -> bytes:
    """``RTM_GETSTATS`` dump of every interface's ``IFLA_STATS_LINK_64``."""
    return pack_message(RTM_GETSTATS,
                        IF_STATS_MSG.pack(0, 0, 0, 0, 1 << (IFLA_STATS_LINK_64 - 1)),
                        flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq, pid=pid)
