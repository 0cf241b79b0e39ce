"""Raw rtnetlink for :mod:`agent.backends.netconf`: link, address, route and
bridge-VLAN dumps decoded by a small parser of only the attributes the
network model needs, and change requests sent one at a time with
``NLM_F_ACK`` on a plain socket, the way ``ip -batch`` talks to the kernel.

Why not pyroute2 for these: its generic decoder spends about half a
millisecond per link (every attribute of every message becomes Python
objects), so reading a namespace of 513 links took 0.2 to 1 s, which was the
whole idempotent re-plan; and each of its requests costs a thread hop and a
lookup (``link_lookup`` asks the kernel for the name every time).  pyroute2
still encodes every change (:mod:`agent.backends.netconf`); this module only
frames, sends, and reads the acknowledgement.

The framing (``nlmsghdr``, ``nlattr``, alignment, error codes) is
:mod:`agent.core.netlink_py`'s.  Pure functions (``parse_*``) take the bytes
of a dump and are tested on recorded and synthetic dumps; :class:`Rtnl` is
the socket, made on the calling thread's namespace.
"""
from __future__ import annotations

import errno
import os
import socket
import struct

from agent.core import netlink_py as wire

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # in an NLMSG_ERROR: request cut to its header; ext-ack follows
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 18, 26, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BRIDGE_VLAN_INFO = 2
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTN_UNICAST = 1
SKIPPED_PROTOCOLS = (2, 9)   # kernel (an address's own prefix route), ra (router advertisements)
LOCAL_TABLE = 255
RTEXT_FILTER_BRVLAN, RTEXT_FILTER_SKIP_STATS = 2, 1 << 3

IFINFOMSG = struct.Struct("=BxHiII")     # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")      # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")      # family, dst_len, src_len, tos, table, protocol, scope, type, flags
U8, U16, U32, S32 = (struct.Struct(f) for f in ("=B", "=H", "=I", "=i"))
BE16 = struct.Struct("!H")
_HDR, _NLA = wire.NLMSGHDR.size, wire.NLATTR.size
_UNPACK_NLA = wire.NLATTR.unpack_from
_LINK_ATTRS = frozenset((IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO,
                         IFLA_LINK_NETNSID))
_TYPE_MASK = wire.NLA_TYPE_MASK
_RECV_ROOM = 64 << 10

# IFLA_INFO_DATA of each kind: attribute -> (model key, decoder)
_U8 = lambda b, s, e: b[s]                                   # noqa: E731
_U32 = lambda b, s, e: U32.unpack_from(b, s)[0]              # noqa: E731
_U16 = lambda b, s, e: U16.unpack_from(b, s)[0]              # noqa: E731
_NBO16 = lambda b, s, e: BE16.unpack_from(b, s)[0]           # noqa: E731
_IP4 = lambda b, s, e: socket.inet_ntop(socket.AF_INET, bytes(b[s:e]))   # noqa: E731
_IP6 = lambda b, s, e: socket.inet_ntop(socket.AF_INET6, bytes(b[s:e]))  # noqa: E731
KIND_DATA = {
    "bond": {1: ("mode", _U8), 3: ("miimon", _U32), 14: ("xmit_hash_policy", _U8), 21: ("lacp_rate", _U8)},
    "bridge": {5: ("stp_state", _U32), 7: ("vlan_filtering", _U8)},
    "vlan": {1: ("id", _U16), 5: ("protocol", _NBO16)},
    "vxlan": {1: ("id", _U32), 2: ("group", _IP4), 3: ("link", _U32), 4: ("local", _IP4), 7: ("learning", _U8),
              15: ("port", _NBO16), 16: ("group6", _IP6), 17: ("local6", _IP6)},
    "macvlan": {1: ("mode", _U32)},
}


def messages(buf, seq: int | None = None):
    """``(type, start, stop)`` of each message of a dump, ``start`` after the
    header; stops at ``NLMSG_DONE``; an error message (or a failed dump)
    raises :class:`agent.core.netlink_py.NetlinkError`; malformed framing
    raises ValueError naming the offset.  ``seq``: skip replies to others."""
    end, off = len(buf), 0
    while off < end:
        if end - off < _HDR:
            raise ValueError(f"netlink header cut short at offset {off}")
        length, kind, _flags, mseq, _pid = wire.NLMSGHDR.unpack_from(buf, off)
        if length < _HDR or length > end - off:
            raise ValueError(f"bad nlmsg_len {length} at offset {off}")
        if seq is None or mseq == seq:
            if kind == wire.NLMSG_DONE or kind == wire.NLMSG_ERROR:
                code = S32.unpack_from(buf, off + _HDR)[0] if length >= _HDR + 4 else 0
                if code < 0:
                    raise wire.netlink_error(-code, "dump failed" if kind == wire.NLMSG_DONE else "netlink error")
                if kind == wire.NLMSG_DONE:
                    return
            else:
                yield kind, off + _HDR, off + length
        off += wire.align(length)


def attrs(buf, start: int, stop: int, wanted: frozenset[int] | None = None) -> dict[int, tuple[int, int]]:
    """{type: (payload start, payload stop)} of the attributes in
    ``buf[start:stop]``, the first of each type (flags masked off); only
    the ``wanted`` types when given (a link has some 50 attributes, and this
    loop is most of the cost of reading a namespace)."""
    out: dict[int, tuple[int, int]] = {}
    unpack = _UNPACK_NLA
    while stop - start >= 4:
        length, kind = unpack(buf, start)
        if length < 4 or length > stop - start:
            raise ValueError(f"bad nla_len {length} at offset {start}")
        kind &= 0x3FFF  # NLA_TYPE_MASK
        if (wanted is None or kind in wanted) and kind not in out:
            out[kind] = (start + 4, start + length)
        start += (length + 3) & ~3
    return out


def _string(buf, span: tuple[int, int]) -> str:
    s, e = span
    return bytes(buf[s:e]).split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_links(buf, known: dict[bytes, dict] | None = None, seen: dict[bytes, dict] | None = None) -> list[dict]:
    """One dict per ``RTM_NEWLINK`` of an ``AF_UNSPEC`` link dump: index,
    ifi_type, flags, name, mtu, mac (``aa:bb:..``), link, master,
    link_netnsid (bool), kind, data ({model key: value} of IFLA_INFO_DATA).

    ``known``: {message body: dict} of an earlier dump; a link whose message
    is byte for byte the same (a dump without statistics, see
    :func:`link_dump_request`, repeats an unchanged link exactly) is not
    decoded again.  ``seen`` is filled with this dump's, for the next call.
    The dicts are shared between calls: read them, never change them."""
    out = []
    for kind, start, stop in messages(buf):
        if kind != RTM_NEWLINK:
            continue
        body = None
        if known is not None or seen is not None:
            body = bytes(buf[start:stop])
            cached = known.get(body) if known is not None else None
            if cached is not None:
                out.append(cached)
                if seen is not None:
                    seen[body] = cached
                continue
        family, ifi_type, index, flags, _ = IFINFOMSG.unpack_from(buf, start)
        if family != socket.AF_UNSPEC:
            continue
        a = attrs(buf, start + IFINFOMSG.size, stop, _LINK_ATTRS)
        link: dict = {"index": index, "ifi_type": ifi_type, "flags": flags,
                      "name": _string(buf, a[IFLA_IFNAME]) if IFLA_IFNAME in a else "",
                      "mtu": U32.unpack_from(buf, a[IFLA_MTU][0])[0] if IFLA_MTU in a else None,
                      "mac": None, "link": None, "master": None, "link_netnsid": IFLA_LINK_NETNSID in a,
                      "kind": None, "data": {}}
        if IFLA_ADDRESS in a:
            s, e = a[IFLA_ADDRESS]
            link["mac"] = ":".join(f"{x:02x}" for x in bytes(buf[s:e])) or None
        for key, attr in (("link", IFLA_LINK), ("master", IFLA_MASTER)):
            if attr in a:
                link[key] = U32.unpack_from(buf, a[attr][0])[0] or None
        if IFLA_LINKINFO in a:
            info = attrs(buf, *a[IFLA_LINKINFO])
            if IFLA_INFO_KIND in info:
                link["kind"] = _string(buf, info[IFLA_INFO_KIND])
            decoders = KIND_DATA.get(link["kind"])
            if decoders and IFLA_INFO_DATA in info:
                for t, (s, e) in attrs(buf, *info[IFLA_INFO_DATA]).items():
                    if t in decoders and e > s:
                        key, decode = decoders[t]
                        link["data"][key] = decode(buf, s, e)
        out.append(link)
        if seen is not None and body is not None:
            seen[body] = link
    return out


def parse_link_names(buf) -> dict[str, int]:
    """{name: ifindex} of a link dump (IFLA_IFNAME is near the front: cheap)."""
    out = {}
    unpack = wire.NLATTR.unpack_from
    for kind, start, stop in messages(buf):
        if kind != RTM_NEWLINK or buf[start] != socket.AF_UNSPEC:
            continue
        index = IFINFOMSG.unpack_from(buf, start)[2]
        at = start + IFINFOMSG.size
        while stop - at >= _NLA:
            length, t = unpack(buf, at)
            if length < _NLA:
                break
            if t & _TYPE_MASK == IFLA_IFNAME:
                out[_string(buf, (at + _NLA, at + length))] = index
                break
            at += (length + 3) & ~3
    return out


def parse_bridge_vlans(buf) -> dict[int, dict[int, int]]:
    """{ifindex: {vid: flags}} of an ``AF_BRIDGE`` dump asked with
    ``RTEXT_FILTER_BRVLAN`` (``struct bridge_vlan_info``: u16 flags, u16 vid)."""
    out: dict[int, dict[int, int]] = {}
    unpack = wire.NLATTR.unpack_from
    for kind, start, stop in messages(buf):
        if kind != RTM_NEWLINK:
            continue
        index = IFINFOMSG.unpack_from(buf, start)[2]
        spec = attrs(buf, start + IFINFOMSG.size, stop).get(IFLA_AF_SPEC)
        if spec is None:
            continue
        table = out.setdefault(index, {})
        at, end = spec
        while end - at >= _NLA:
            length, t = unpack(buf, at)
            if length < _NLA or length > end - at:
                raise ValueError(f"bad nla_len {length} at offset {at}")
            if t & _TYPE_MASK == IFLA_BRIDGE_VLAN_INFO and length >= _NLA + 4:
                flags, vid = struct.unpack_from("=HH", buf, at + _NLA)
                table[vid] = flags
            at += (length + 3) & ~3
    return out


def parse_addrs(buf) -> list[tuple[int, int, str, int]]:
    """``(ifindex, family, ip, prefixlen)`` of an address dump, IPv6
    link-local addresses left out (the kernel's, never managed)."""
    out = []
    for kind, start, stop in messages(buf):
        if kind != RTM_NEWADDR:
            continue
        family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(buf, start)
        a = attrs(buf, start + IFADDRMSG.size, stop)
        span = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        if span is None:
            continue
        raw = bytes(buf[span[0]:span[1]])
        if family == socket.AF_INET6 and raw[0] == 0xFE and raw[1] & 0xC0 == 0x80:  # fe80::/10
            continue
        out.append((index, family, socket.inet_ntop(family, raw), prefixlen))
    return out


def parse_routes(buf) -> list[dict]:
    """Unicast routes of a route dump, less the kernel's (an address's own
    prefix, router advertisements), the ``local`` table and multipath ones:
    dicts of family, dst (CIDR), gateway, oif, metric, table, protocol."""
    out = []
    for kind, start, stop in messages(buf):
        if kind != RTM_NEWROUTE:
            continue
        family, dst_len, _src, _tos, table, proto, _scope, rtype, _f = RTMSG.unpack_from(buf, start)
        if rtype != RTN_UNICAST or proto in SKIPPED_PROTOCOLS:
            continue
        a = attrs(buf, start + RTMSG.size, stop)
        if RTA_TABLE in a:
            table = U32.unpack_from(buf, a[RTA_TABLE][0])[0]
        if table == LOCAL_TABLE or RTA_MULTIPATH in a:
            continue
        ip = (lambda span: socket.inet_ntop(family, bytes(buf[span[0]:span[1]])))
        dst = ip(a[RTA_DST]) if RTA_DST in a else ("0.0.0.0" if family == socket.AF_INET else "::")
        out.append({"family": family, "dst": f"{dst}/{dst_len}",
                    "gateway": ip(a[RTA_GATEWAY]) if RTA_GATEWAY in a else None,
                    "oif": U32.unpack_from(buf, a[RTA_OIF][0])[0] if RTA_OIF in a else None,
                    "metric": U32.unpack_from(buf, a[RTA_PRIORITY][0])[0] if RTA_PRIORITY in a else 0,
                    "table": table, "protocol": proto})
    return out


def ack_error(buf, seq: int) -> tuple[int, str] | None:
    """``(errno, kernel's extended-ack text or "")`` of the acknowledgement
    of request ``seq`` in ``buf``, or None when it succeeded.  ValueError
    when ``buf`` holds no acknowledgement of ``seq``."""
    end, off = len(buf), 0
    while end - off >= _HDR:
        length, kind, flags, mseq, _ = wire.NLMSGHDR.unpack_from(buf, off)
        if length < _HDR or length > end - off:
            break
        if kind == wire.NLMSG_ERROR and mseq == seq and length >= _HDR + 4:
            code = S32.unpack_from(buf, off + _HDR)[0]
            if code == 0:
                return None
            text = ""
            if flags & NLM_F_ACK_TLVS and flags & NLM_F_CAPPED:  # after the code and the request header
                try:
                    tlv = attrs(buf, off + _HDR + 4 + _HDR, off + length)
                except ValueError:
                    tlv = {}
                if NLMSGERR_ATTR_MSG in tlv:
                    text = _string(buf, tlv[NLMSGERR_ATTR_MSG])
            return -code, text
        off += wire.align(length)
    raise ValueError(f"no acknowledgement of request {seq}")


def link_dump_request(seq: int, family: int = socket.AF_UNSPEC, ext_mask: int = RTEXT_FILTER_SKIP_STATS) -> bytes:
    """A link dump; by default without the counters (``RTEXT_FILTER_SKIP_STATS``,
    ignored by kernels before 5.1): the model has no use for them, and
    without them an unchanged link's message is the same in every dump."""
    payload = IFINFOMSG.pack(family, 0, 0, 0, 0)
    if ext_mask:
        payload += wire.pack_attr(IFLA_EXT_MASK, U32.pack(ext_mask))
    return wire.pack_message(RTM_GETLINK, payload, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq)


def addr_dump_request(seq: int) -> bytes:
    return wire.pack_message(RTM_GETADDR, IFADDRMSG.pack(0, 0, 0, 0, 0), flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq)


def route_dump_request(seq: int, family: int) -> bytes:
    return wire.pack_message(RTM_GETROUTE, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0),
                             flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq)


class Rtnl:
    """A ``NETLINK_ROUTE`` socket of the calling thread's namespace: whole
    dumps, and one request at a time answered by its acknowledgement.  The
    kernel handles a request inside ``send()``, so the acknowledgement is
    queued when it returns; a failure stops the caller at that request, as
    ``ip -batch`` stops at the failing line."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self._sock.settimeout(timeout)
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):  # short acks, with the kernel's reason
                try:
                    self._sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:
                    pass
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._buf = bytearray(_RECV_ROOM)

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq

    def dump(self, make_request) -> bytes:
        """``make_request(seq)`` -> the request bytes; the reply's datagrams,
        concatenated (replies to other sequence numbers are dropped)."""
        seq = self.next_seq()
        self._sock.send(make_request(seq))
        parts = []
        while True:
            n = self._sock.recv_into(self._buf, len(self._buf), socket.MSG_TRUNC)
            if n > len(self._buf):
                raise wire.NetlinkError(errno.EMSGSIZE, f"netlink datagram of {n} bytes truncated")
            if n < _HDR or wire.NLMSGHDR.unpack_from(self._buf, 0)[3] != seq:
                continue
            parts.append(bytes(self._buf[:n]))
            if wire.last_message_type(self._buf, 0, n) in (wire.NLMSG_DONE, wire.NLMSG_ERROR, -1):
                return b"".join(parts)

    def request(self, data: bytes, seq: int) -> None:
        """Send one request (its header carries ``seq`` and NLM_F_ACK) and
        read its acknowledgement; a refusal raises NetlinkError (an OSError
        with the kernel's errno)."""
        self._sock.send(data)
        while True:
            n = self._sock.recv_into(self._buf, len(self._buf))
            try:
                failed = ack_error(memoryview(self._buf)[:n], seq)
            except ValueError:
                continue  # a stray reply to something else
            if failed is None:
                return
            code, text = failed
            raise wire.NetlinkError(code, f"{_strerror(code)}: {text}" if text else _strerror(code))

    def close(self) -> None:
        self._sock.close()


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return f"error {code}"
