"""Frames and TPACKET_V3 blocks for the flow kernel's tests and benchmark.

IP, IPv6, TCP, UDP and ICMP headers come from dpkt (lengths and checksums
right); the Ethernet header, VLAN tags, IPv6 extension headers and the VXLAN
header are packed here, because dpkt chooses TPIDs itself and keeps IPv6
extension headers in a dict (one of each type, in a fixed order).  Blocks are
packed to the kernel's layout in linux/if_packet.h, host byte order (the
offsets are in agent/core/flows_py.py's comments and docs/flows-kernel.md).
"""
from __future__ import annotations

import struct

import dpkt

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
TPACKET_ALIGN = 16


def ether(payload: bytes, etype: int, tags=()) -> bytes:
    """Ethernet frame; ``tags`` = [(tpid, vid), ...], outermost first."""
    tagged = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
    return MAC_B + MAC_A + tagged + struct.pack("!H", etype) + payload


def l4(proto: int, sport: int = 0, dport: int = 0, payload: bytes = b""):
    """A TCP, UDP or ICMP(v6) header (ICMP: sport = type, dport = code)."""
    if proto == 6:
        return dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_ACK, data=payload)
    if proto == 17:
        return dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)
    if proto == 1:
        return dpkt.icmp.ICMP(type=sport, code=dport, data=payload)
    if proto == 58:
        return dpkt.icmp6.ICMP6(type=sport, code=dport, data=payload)
    return payload


def ipv4(src: bytes, dst: bytes, proto: int, data, frag_off: int = 0, mf: bool = False,
         opts: bytes = b"") -> bytes:
    """IPv4 packet; ``frag_off`` in 8-byte units, ``opts`` a multiple of 4."""
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, hl=5 + len(opts) // 4, opts=opts,
                    mf=int(mf), offset=frag_off, data=data)
    return bytes(ip)


def ipv6(src: bytes, dst: bytes, proto: int, data, ext=()) -> bytes:
    """IPv6 packet; ``ext`` = [(type, body)] extension headers in order, body
    the bytes after the next-header/length pair (fragment: after next header)."""
    chain = b""
    types = [t for t, _ in ext] + [proto]
    for i, (etype, body) in enumerate(ext):
        nxt = types[i + 1]
        if etype == 44:
            chain += struct.pack("!B", nxt) + body
        elif etype == 51:
            chain += struct.pack("!BB", nxt, (2 + len(body)) // 4 - 2) + body
        else:
            chain += struct.pack("!BB", nxt, (2 + len(body)) // 8 - 1) + body
    payload = chain + bytes(data)
    ip6 = dpkt.ip6.IP6(src=src, dst=dst, nxt=types[0], hlim=64, plen=len(payload),
                       data=payload)
    ip6.extension_hdrs = {}
    return bytes(ip6)


def frag6(offset: int, mf: bool = False, ident: int = 1) -> tuple:
    """An IPv6 fragment header for ``ipv6(ext=...)``; offset in 8-byte units."""
    return 44, struct.pack("!xHI", (offset << 3) | int(mf), ident)


def vxlan(vni: int, inner: bytes, flags: int = 0x08) -> bytes:
    """VXLAN header (RFC 7348) and the inner frame: a UDP payload."""
    return struct.pack("!B3xI", flags, vni << 8) + inner


# --- TPACKET_V3 blocks ------------------------------------------------------

def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def block(packets, first: int = 48, truncate_to: int | None = None) -> bytes:
    """One TPACKET_V3 block as the kernel fills it: ``packets`` =
    [(frame, wire_len, pkttype, vlan_tci or None)], the frame being the
    captured bytes.  Each packet: struct tpacket3_hdr (48 bytes), its
    sockaddr_ll at 48, the frame at tp_mac = TPACKET_ALIGN(68); tp_next_offset
    is the packet's aligned length, 0 for the last one."""
    out = bytearray(first)
    mac = _align(68, TPACKET_ALIGN)
    for i, (frame, wire, pkttype, tci) in enumerate(packets):
        total = _align(mac + len(frame), 8)
        nxt = 0 if i == len(packets) - 1 else total
        status = 1 | (0x10 if tci is not None else 0)  # TP_STATUS_USER, VLAN_VALID
        hdr = struct.pack("=IIIIIIHHIIHH8x", nxt, 1, 2, len(frame), wire, status, mac, mac + 14,
                          0, tci or 0, 0x8100 if tci is not None else 0, 0)
        sll = struct.pack("=HHiHBB8s", 17, 0, 7, 1, pkttype, 6, MAC_A)
        pkt = hdr + sll
        pkt += bytes(mac - len(pkt)) + frame
        out += pkt + bytes(total - len(pkt))
    struct.pack_into("=IIIIIIQ", out, 0, 3, 0, 1, len(packets), first, len(out), 1)
    data = bytes(out)
    return data if truncate_to is None else data[:truncate_to]


def packet_offsets(data) -> list[int]:
    """Where each packet header of a well-formed ``block()`` starts."""
    num, off = struct.unpack_from("=II", data, 12)
    out = []
    for _ in range(num):
        out.append(off)
        off += struct.unpack_from("=I", data, off)[0]
    return out


def _mix_flow(rnd) -> bytes:
    """One flow's header of the mix in ``sample_mix``."""
    kind = rnd.random()
    host = rnd.randrange(1, 250)
    src4, dst4 = bytes([10, 0, rnd.randrange(4), host]), bytes([10, 0, 9, rnd.randrange(1, 8)])
    src6, dst6 = bytes(15) + bytes([host]), bytes(14) + bytes([1, rnd.randrange(8)])
    proto = 6 if rnd.random() < 0.7 else 17
    seg = l4(proto, rnd.randrange(32768, 61000), rnd.choice((443, 80, 53, 5201, 3306)), bytes(64))
    if kind < 0.35:
        return ether(ipv4(src4, dst4, proto, seg), 0x0800)
    if kind < 0.55:
        return ether(ipv6(src6, dst6, proto, seg), 0x86DD)
    if kind < 0.70:
        return ether(ipv4(src4, dst4, proto, seg), 0x0800, [(0x8100, 100 + host % 4)])
    if kind < 0.95:
        inner = ether(ipv4(src4, dst4, proto, seg), 0x0800)
        udp = l4(17, 49152 + host, 4789, vxlan(1000 + host % 8, inner))
        return ether(ipv4(bytes([192, 168, 0, 1]), bytes([192, 168, 0, 2]), 17, udp), 0x0800)
    return ether(ipv4(src4, dst4, 1, l4(1, 8, 0, bytes(56))), 0x0800)


def sample_mix(n: int, seed: int = 1, flows: int = 2000) -> list[bytes]:
    """``n`` header snapshots (128 bytes at most, as the sampler captures) of
    a hypervisor's mix: TCP and UDP over IPv4 (35 %) and IPv6 (20 %), VLAN-tagged
    (15 %), VXLAN-encapsulated tenant traffic (25 %), ICMP (5 %); drawn from
    ``flows`` flows whose popularity follows Zipf's law (a few elephants, many
    mice), as sampled traffic does."""
    import random

    rnd = random.Random(seed)
    headers = [_mix_flow(rnd)[:128] for _ in range(flows)]
    return rnd.choices(headers, weights=[1 / (i + 1) for i in range(flows)], k=n)
