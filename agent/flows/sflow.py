"""sFlow version 5 encoding (sflow.org, "sFlow Version 5", July 2004, and
the "sFlow Tunnel Structures" extension for the VNI records).  Pure: values
in, XDR bytes out (big-endian 32-bit words, opaque data padded to 4 bytes).

What the agent sends:

- a **datagram**: version 5, the agent address (IPv4 or IPv6), sub-agent
  id, a datagram sequence number, uptime in ms, then its samples;
- a **flow_sample** (enterprise 0, format 1) per sampled packet: sequence
  number per source, ``source_id`` = ifIndex (type 0), the sampling rate,
  the sample pool (packets the sampler saw: samples x rate, since the kernel
  filter does not count the packets it skipped), the ring drops, input or
  output ifIndex by direction, and its records: the **raw packet header**
  (format 1, header protocol 1 = Ethernet; frame length = the wire length,
  nothing stripped) and, for VXLAN, **extended_vni_ingress/egress** (formats
  1030/1029: the VNI);
- a **counters_sample** (format 2) per interface every
  ``polling_interval``: the **generic interface counters** (format 1), from
  the same ``RTM_GETSTATS`` counters the netdev collector reads.

Datagrams are kept under ``MAX_DATAGRAM`` bytes (hsflowd's 1400: no IP
fragmentation on a 1500-byte path).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

VERSION = 5
PORT = 6343  # the collectors' port (IANA)
MAX_DATAGRAM = 1400
FLOW_SAMPLE = 1
COUNTERS_SAMPLE = 2
RAW_HEADER = 1
HEADER_ETHERNET = 1
GENERIC_INTERFACE = 1
VNI_EGRESS = 1029
VNI_INGRESS = 1030
IFTYPE_ETHERNET = 6  # ethernetCsmacd
DIR_IN, DIR_OUT = 0, 1
_U32 = 0xFFFFFFFF

_HEAD = struct.Struct(">II")  # data_format, length


def _record(fmt: int, body: bytes) -> bytes:
    return _HEAD.pack(fmt, len(body)) + body


def _opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


def encode_address(address: str) -> bytes:
    """An sFlow ``address``: type 1 + 4 bytes (IPv4) or type 2 + 16 bytes."""
    ip = ipaddress.ip_address(address)
    return struct.pack(">I", 1 if ip.version == 4 else 2) + ip.packed


def flow_sample(seq: int, ifindex: int, direction: int, rate: int, pool: int, drops: int,
                frame_len: int, header: bytes, vni: int = 0) -> bytes:
    """One sampled packet as a flow_sample (with its data_format and length)."""
    records = [_record(RAW_HEADER, struct.pack(">III", HEADER_ETHERNET, frame_len & _U32, 0)
                       + _opaque(bytes(header)))]
    if vni:
        records.append(_record(VNI_EGRESS if direction == DIR_OUT else VNI_INGRESS,
                               struct.pack(">I", vni & _U32)))
    inp, out = (0, ifindex) if direction == DIR_OUT else (ifindex, 0)
    body = struct.pack(">IIIIIIII", seq & _U32, ifindex & 0xFFFFFF, rate & _U32, pool & _U32,
                       drops & _U32, inp & 0x3FFFFFFF, out & 0x3FFFFFFF, len(records))
    return _record(FLOW_SAMPLE, body + b"".join(records))


@dataclass(frozen=True)
class IfCounters:
    """What a generic interface counters record carries (RFC 2233 names)."""

    ifindex: int
    speed_bps: int = 0
    full_duplex: bool | None = None
    admin_up: bool = False
    oper_up: bool = False
    in_octets: int = 0
    in_ucast: int = 0
    in_multicast: int = 0
    in_broadcast: int = 0
    in_discards: int = 0
    in_errors: int = 0
    in_unknown_protos: int = 0
    out_octets: int = 0
    out_ucast: int = 0
    out_multicast: int = 0
    out_broadcast: int = 0
    out_discards: int = 0
    out_errors: int = 0
    promiscuous: bool = False


_GENERIC = struct.Struct(">IIQIIQIIIIIIQIIIIII")  # 88 bytes


def counters_sample(seq: int, c: IfCounters) -> bytes:
    """One interface's counters as a counters_sample."""
    direction = 0 if c.full_duplex is None else (1 if c.full_duplex else 2)
    status = int(c.admin_up) | (int(c.oper_up) << 1)
    m32 = lambda v: v & _U32  # noqa: E731  (32-bit counters wrap, as in the MIB)
    generic = _GENERIC.pack(
        c.ifindex & _U32, IFTYPE_ETHERNET, c.speed_bps, direction, status,
        c.in_octets & 0xFFFFFFFFFFFFFFFF, m32(c.in_ucast), m32(c.in_multicast), m32(c.in_broadcast),
        m32(c.in_discards), m32(c.in_errors), m32(c.in_unknown_protos),
        c.out_octets & 0xFFFFFFFFFFFFFFFF, m32(c.out_ucast), m32(c.out_multicast), m32(c.out_broadcast),
        m32(c.out_discards), m32(c.out_errors), int(c.promiscuous))
    body = struct.pack(">III", seq & _U32, c.ifindex & 0xFFFFFF, 1) + _record(GENERIC_INTERFACE, generic)
    return _record(COUNTERS_SAMPLE, body)


def datagram(agent_address: bytes, sub_agent_id: int, seq: int, uptime_ms: int,
             samples: list[bytes]) -> bytes:
    """A datagram holding ``samples`` (already encoded)."""
    return (struct.pack(">I", VERSION) + agent_address
            + struct.pack(">IIII", sub_agent_id & _U32, seq & _U32, uptime_ms & _U32, len(samples))
            + b"".join(samples))


def header_size(agent_address: bytes) -> int:
    return 4 + len(agent_address) + 16


def pack_samples(agent_address: bytes, samples: list[bytes], limit: int = MAX_DATAGRAM) -> list[list[bytes]]:
    """``samples`` split into groups that each fit one datagram of at most
    ``limit`` bytes (a sample larger than that goes alone)."""
    room = limit - header_size(agent_address)
    groups: list[list[bytes]] = []
    current: list[bytes] = []
    used = 0
    for s in samples:
        if current and used + len(s) > room:
            groups.append(current)
            current, used = [], 0
        current.append(s)
        used += len(s)
    if current:
        groups.append(current)
    return groups
