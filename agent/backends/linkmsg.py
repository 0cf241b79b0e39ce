"""``RTM_NEWLINK``/``RTM_DELLINK`` messages decoded for the link watcher,
without pyroute2.

Why not pyroute2 here: importing any of its modules imports the whole package
(its ``__init__`` loads IPRoute, NDB, IPDB, asyncio and some 200 modules), and
that was 9 MB of every agent's resident memory, at every host, for the few
attributes :func:`agent.backends.linkinfo.parse_link` reads
(docs/benchmarks.md, "Third pass").  The network feature still uses
pyroute2, loaded when it is first used.

:func:`parse` decodes only those attributes, into the shape ``parse_link``
already takes from pyroute2 (``msg["index"]``, ``msg["attrs"]`` of
``(name, value)`` slots, nests with ``get_attr``/``get_attrs``, the VF
structs as dicts), so the two decoders give the same :class:`Link`
(tests/test_linkmsg.py holds them to it, on the kernel's own dumps).  The
framing is :mod:`agent.core.netlink_py`'s.  Pure: bytes in, values out.
"""
from __future__ import annotations

import socket
import struct
from typing import Callable, Iterator, NamedTuple

from agent.core import netlink_py as wire

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTMGRP_LINK = 1
IFLA_EXT_MASK = 29
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_U8, _U16, _U32, _U64, _S32 = (struct.Struct(f) for f in ("=B", "=H", "=I", "=Q", "=i"))
_HDR = wire.NLMSGHDR.size
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

Decoder = Callable[[memoryview], object]


def _u(fmt: struct.Struct) -> Decoder:
    return lambda b: fmt.unpack_from(b)[0] if len(b) >= fmt.size else None


def _string(b: memoryview) -> str:
    return bytes(b).split(b"\0", 1)[0].decode("utf-8", "replace")


def _mac(b: memoryview) -> str:
    return ":".join(f"{x:02x}" for x in bytes(b))


def _operstate(b: memoryview) -> str:
    code = b[0] if len(b) else 0
    return OPERSTATES[code] if code < len(OPERSTATES) else "UNKNOWN"


def _struct(names: tuple[str, ...]) -> Decoder:
    """A struct of u32 fields (``struct ifla_vf_vlan`` and the like)."""
    fmt = struct.Struct(f"={len(names)}I")
    return lambda b: dict(zip(names, fmt.unpack_from(b))) if len(b) >= fmt.size else None


def _vf_mac(b: memoryview) -> dict | None:
    if len(b) < 10:
        return None
    return {"vf": _U32.unpack_from(b)[0], "mac": _mac(b[4:10])}  # struct ifla_vf_mac: mac[32], 6 used


class Nest:
    """The decoded attributes of one nest, pyroute2's ``get_attr`` shape."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: list[Slot]) -> None:
        self.attrs = attrs

    def get_attr(self, name: str):
        return _first(self.attrs, name)

    def get_attrs(self, name: str) -> list:
        return [slot.value for slot in self.attrs if slot.name == name]


class Slot(NamedTuple):
    name: str
    value: object


def _first(attrs: list[Slot], name: str):
    return next((slot.value for slot in attrs if slot.name == name), None)


Table = dict[int, tuple[str, Decoder]]


def _nest(table: Table) -> Decoder:
    return lambda b: Nest(_decode(b, table))


_VF_STATS: Table = {i: (f"IFLA_VF_STATS_{n}", _u(_U64)) for i, n in enumerate(
    ("RX_PACKETS", "TX_PACKETS", "RX_BYTES", "TX_BYTES", "BROADCAST", "MULTICAST", "PAD",
     "RX_DROPPED", "TX_DROPPED"))}
_VF_INFO: Table = {
    1: ("IFLA_VF_MAC", _vf_mac),
    2: ("IFLA_VF_VLAN", _struct(("vf", "vlan", "qos"))),
    4: ("IFLA_VF_SPOOFCHK", _struct(("vf", "spoofchk"))),
    5: ("IFLA_VF_LINK_STATE", _struct(("vf", "link_state"))),
    8: ("IFLA_VF_STATS", _nest(_VF_STATS)),
    9: ("IFLA_VF_TRUST", _struct(("vf", "trust"))),
}
# IFLA_INFO_DATA of the kinds parse_link looks into
_INFO_DATA: dict[str, Table] = {
    "tun": {3: ("IFLA_TUN_TYPE", _u(_U8))},
    "vlan": {1: ("IFLA_VLAN_ID", _u(_U16))},
    "vxlan": {1: ("IFLA_VXLAN_ID", _u(_U32))},
}


def _linkinfo(b: memoryview) -> Nest:
    spans = list(_spans(b))
    kind = next((_string(b[s:e]) for t, s, e in spans if t == 1), "")
    data = _INFO_DATA.get(kind, {})
    attrs = [Slot("IFLA_INFO_KIND", kind)] if any(t == 1 for t, _, _ in spans) else []
    attrs += [Slot("IFLA_INFO_DATA", Nest(_decode(b[s:e], data))) for t, s, e in spans if t == 2]
    return Nest(attrs)


IFLA: Table = {
    1: ("IFLA_ADDRESS", _mac), 3: ("IFLA_IFNAME", _string), 4: ("IFLA_MTU", _u(_U32)),
    5: ("IFLA_LINK", _u(_U32)), 10: ("IFLA_MASTER", _u(_U32)), 13: ("IFLA_TXQLEN", _u(_U32)),
    16: ("IFLA_OPERSTATE", _operstate), 17: ("IFLA_LINKMODE", _u(_U8)), 18: ("IFLA_LINKINFO", _linkinfo),
    20: ("IFLA_IFALIAS", _string), 21: ("IFLA_NUM_VF", _u(_U32)),
    22: ("IFLA_VFINFO_LIST", _nest({1: ("IFLA_VF_INFO", _nest(_VF_INFO))})),
    27: ("IFLA_GROUP", _u(_U32)), 33: ("IFLA_CARRIER", _u(_U8)), 35: ("IFLA_CARRIER_CHANGES", _u(_U32)),
    47: ("IFLA_CARRIER_UP_COUNT", _u(_U32)), 48: ("IFLA_CARRIER_DOWN_COUNT", _u(_U32)),
    56: ("IFLA_PARENT_DEV_NAME", _string),
}


def _spans(b: memoryview) -> Iterator[tuple[int, int, int]]:
    """``(type, start, stop)`` of each attribute in ``b``; ValueError on bad framing."""
    off, end = 0, len(b)
    while end - off >= 4:
        length, kind = wire.NLATTR.unpack_from(b, off)
        if length < 4 or length > end - off:
            raise ValueError(f"bad nla_len {length} at offset {off}")
        yield kind & wire.NLA_TYPE_MASK, off + 4, off + length
        off += wire.align(length)


def _decode(b: memoryview, table: Table) -> list[Slot]:
    out = []
    for kind, start, stop in _spans(b):
        known = table.get(kind)
        if known is not None:
            out.append(Slot(known[0], known[1](b[start:stop])))
    return out


class LinkMsg:
    """One ``RTM_NEWLINK``/``RTM_DELLINK``: the ``ifinfomsg`` fields and the
    attributes ``parse_link`` reads, as ``msg["index"]``, ``msg["attrs"]``."""

    __slots__ = ("fields", "attrs")

    def __init__(self, fields: dict, attrs: list[Slot]) -> None:
        self.fields, self.attrs = fields, attrs

    def __getitem__(self, key: str):
        return self.attrs if key == "attrs" else self.fields[key]

    def get_attr(self, name: str):
        return _first(self.attrs, name)


class Message(NamedTuple):
    """One netlink message: its header, and ``link`` (a link message) or
    ``error`` (``NLMSG_ERROR``: the positive errno, 0 for an ACK)."""

    type: int
    flags: int
    seq: int
    pid: int
    link: LinkMsg | None = None
    error: int = 0


def parse(buf) -> Iterator[Message]:
    """The messages of one datagram; ValueError on bad framing."""
    view = memoryview(buf)
    off, end = 0, len(view)
    while off < end:
        if end - off < _HDR:
            raise ValueError(f"netlink header cut short at offset {off}")
        length, kind, flags, seq, pid = wire.NLMSGHDR.unpack_from(view, off)
        if length < _HDR or length > end - off:
            raise ValueError(f"bad nlmsg_len {length} at offset {off}")
        body = view[off + _HDR:off + length]
        if kind == wire.NLMSG_ERROR:
            code = _S32.unpack_from(body)[0] if len(body) >= 4 else 0
            yield Message(kind, flags, seq, pid, error=abs(code))
        elif kind in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= IFINFOMSG.size:
            family, ifi_type, index, ifi_flags, _ = IFINFOMSG.unpack_from(body)
            fields = {"family": family, "ifi_type": ifi_type, "index": index, "flags": ifi_flags}
            yield Message(kind, flags, seq, pid, link=LinkMsg(fields, _decode(body[IFINFOMSG.size:], IFLA)))
        else:
            yield Message(kind, flags, seq, pid)
        off += wire.align(length)


def getlink_request(seq: int, flags: int, index: int = 0, ext_mask: int = 0) -> bytes:
    """``RTM_GETLINK`` of one link (``index``) or, with ``NLM_F_DUMP`` in
    ``flags``, of all; ``ext_mask``: ``IFLA_EXT_MASK`` (``RTEXT_FILTER_*``)."""
    payload = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if ext_mask:
        payload += wire.pack_attr(IFLA_EXT_MASK, _U32.pack(ext_mask))
    return wire.pack_message(RTM_GETLINK, payload, flags=flags, seq=seq)
