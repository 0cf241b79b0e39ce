"""Pure-Python twin of the packet header decoder and flow table in
``ext/_flows.pyx``: this file is the specification, the Cython module must
give the same ``flows()``, counters, return values and exception types for
every input (``tests/test_flows_kernel.py`` holds them to it).
docs/flows-kernel.md explains the choices.

Decoding, ``parse_frame(frame)`` -> ``(status, vlan, vni, ethertype, src,
dst, proto, sport, dport)``; ``status`` is ``OK`` (0), ``TRUNCATED`` (1: the
captured bytes end inside a header the decoder reads) or ``MALFORMED`` (2):

* Ethernet: under 14 bytes is truncated, all fields 0.  Tags with TPID
  0x8100, 0x88a8 or 0x9100 are skipped, any number of them; ``vlan`` is the
  outermost one's VID (TCI & 0xfff).  A tag cut short: truncated, with the
  TPID as the ethertype.
* IPv4 (0x0800): under 20 bytes truncated (no addresses); version != 4 or
  IHL < 5 malformed; header (options) cut short truncated with addresses and
  protocol; a fragment with a non-zero offset has no ports.  The total length
  is not checked (BIG TCP and GSO packets carry 0 or more than was sent).
* IPv6 (0x86dd): under 40 bytes truncated; version != 6 malformed.  Extension
  headers 0, 43, 60, 135, 139, 140 ((len + 1) * 8 bytes), 51 (AH,
  (len + 2) * 4) and 44 (fragment, 8 bytes; a non-zero offset ends the walk,
  no ports) are skipped; ``proto`` is the first other next-header.  A chain
  cut short: truncated, ``proto`` the extension header's type.
* TCP (6) and UDP (17): ports when their 4 bytes are captured; truncated when
  the fixed header (20 / 8 bytes) is not.  ICMP (1) and ICMPv6 (58), in either
  IP version: ``sport`` = type, ``dport`` = code; truncated under 4 bytes.
* VXLAN: UDP destination 4789 with the I flag (0x08) in the 8-byte VXLAN
  header: ``vni`` is its VNI and every other field but ``vlan`` (the outer
  frame's) comes from decoding the inner frame the same way (VXLAN in VXLAN is
  not opened).  The VXLAN header cut short: truncated, the outer UDP fields.
* Any other ethertype (ARP, LLDP, an 802.3 length...): OK, no addresses.
* Malformed: ``src`` = ``dst`` = b"", ``proto`` and ports 0; ``vlan``,
  ``vni`` and ``ethertype`` as seen.

``FlowTable`` aggregates frames by (ifindex, direction, vlan, vni, ethertype,
src, dst, proto, sport, dport), adding ``rate`` packets and ``frame_len *
rate`` bytes (saturating at 2**64 - 1).  At most ``max_flows`` flows: a new
key when full first evicts the flow with the fewest bytes, the oldest
(created first) among equals, exactly -- found with a lazy min-heap that is
only touched when evicting.  ``add_block`` walks one TPACKET_V3 block (the
layouts are below) and accounts every packet as ``add_frame`` would, except
that a VLAN tag the kernel stripped into ``tp_vlan_tci`` (TP_STATUS_VLAN_VALID)
is the outermost VLAN.  Its optional ``headers`` list gets one ``(direction,
frame_len, header)`` per packet for sFlow: the captured bytes and ``tp_len``,
except that a tag the kernel stripped is put back where it was on the wire,
after the two MAC addresses (TPID ``tp_vlan_tpid`` when
TP_STATUS_VLAN_TPID_VALID, else 0x8100; then the 16-bit TCI), and
``frame_len`` is ``tp_len + 4``.  A frame captured shorter than the two MAC
addresses keeps its bytes (the tag has no place in them) but its length still
counts the tag.  The counters are cumulative; ``clear()`` empties the table
only.
"""
from __future__ import annotations

import heapq
import operator
import struct

OK, TRUNCATED, MALFORMED = 0, 1, 2
DIR_IN, DIR_OUT = 0, 1
PACKET_OUTGOING = 4  # sockaddr_ll.sll_pkttype of a frame the host sent
VXLAN_PORT = 4789
MAX_FLOWS_LIMIT = 1 << 22  # 4 Mi flows, 512 MiB in the Cython table
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_IP6_EXT_8 = (0, 43, 60, 135, 139, 140)  # length in 8-byte units, not counting the first 8
_IP6_AH, _IP6_FRAG = 51, 44

# linux/if_packet.h, host byte order.  struct tpacket_block_desc: version
# (u32, 0), offset_to_priv (u32, 4), then struct tpacket_hdr_v1 at 8:
# block_status (8), num_pkts (12), offset_to_first_pkt (16), blk_len (20),
# seq_num (u64, 24), ts_first_pkt (32), ts_last_pkt (40); 48 bytes in all.
BLOCK_DESC_LEN = 48
BLOCK_NUM_PKTS, BLOCK_FIRST_PKT = 12, 16
# struct tpacket3_hdr (48 bytes): tp_next_offset (u32, 0), tp_sec (4),
# tp_nsec (8), tp_snaplen (12), tp_len (16), tp_status (20), tp_mac (u16, 24),
# tp_net (u16, 26), hv1: tp_rxhash (u32, 28), tp_vlan_tci (u32, 32),
# tp_vlan_tpid (u16, 36), padding to 48.  Then, at TPACKET_ALIGN(48) = 48, a
# struct sockaddr_ll (20 bytes) whose sll_pkttype (u8) is at 10: TPACKET3_HDRLEN
# = 68 bytes precede any frame.
TPACKET3_HDRLEN = 68
PKT_SLL_PKTTYPE = 48 + 10
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_MACS = 12  # the two MAC addresses a re-inserted tag follows
VLAN_TAG_LEN = 4
_HDR = struct.Struct("=I8xIIIH6xIH")  # next, snaplen, len, status, mac, vlan_tci, vlan_tpid
_TAG = struct.Struct(">HH")  # TPID, TCI as on the wire
_U32 = struct.Struct("=I")


def checked(value, name: str, low: int, high: int) -> int:
    """An integer argument within [low, high]: TypeError when it is not an
    integer, ValueError naming it when out of range (the Cython module uses it too)."""
    value = operator.index(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")
    return value


def _l4(b: bytes, off: int, n: int, proto: int, inner: bool, out: list) -> int:
    """Ports (or ICMP type/code) at ``off``; opens VXLAN unless ``inner``."""
    if proto == 6 or proto == 17:
        if off + 4 <= n:
            out[6] = (b[off] << 8) | b[off + 1]
            out[7] = (b[off + 2] << 8) | b[off + 3]
        if off + (20 if proto == 6 else 8) > n:
            return TRUNCATED
        if proto == 17 and out[7] == VXLAN_PORT and not inner:
            vx = off + 8
            if vx + 8 > n:
                return TRUNCATED
            if b[vx] & 0x08:
                vni = (b[vx + 4] << 16) | (b[vx + 5] << 8) | b[vx + 6]
                status = _decode(b, vx + 8, n, True, out)
                out[1] = vni
                return status
        return OK
    if proto == 1 or proto == 58:
        if off + 2 <= n:
            out[6], out[7] = b[off], b[off + 1]
        return TRUNCATED if off + 4 > n else OK
    return OK


def _ipv4(b: bytes, off: int, n: int, inner: bool, out: list) -> int:
    if off + 20 > n:
        return TRUNCATED
    if b[off] >> 4 != 4 or b[off] & 0x0F < 5:
        return MALFORMED
    out[3], out[4], out[5] = b[off + 12:off + 16], b[off + 16:off + 20], b[off + 9]
    hlen = (b[off] & 0x0F) * 4
    if off + hlen > n:
        return TRUNCATED
    if ((b[off + 6] << 8) | b[off + 7]) & 0x1FFF:
        return OK  # a later fragment: no transport header
    return _l4(b, off + hlen, n, out[5], inner, out)


def _ipv6(b: bytes, off: int, n: int, inner: bool, out: list) -> int:
    if off + 40 > n:
        return TRUNCATED
    if b[off] >> 4 != 6:
        return MALFORMED
    out[3], out[4] = b[off + 8:off + 24], b[off + 24:off + 40]
    nh = b[off + 6]
    off += 40
    while True:
        out[5] = nh
        if nh in _IP6_EXT_8 or nh == _IP6_AH:
            if off + 2 > n:
                return TRUNCATED
            ext = nh
            nh, length = b[off], b[off + 1]
            off += (length + 2) * 4 if ext == _IP6_AH else (length + 1) * 8
        elif nh == _IP6_FRAG:
            if off + 8 > n:
                return TRUNCATED
            nh = b[off]
            if ((b[off + 2] << 8) | b[off + 3]) >> 3:
                out[5] = nh
                return OK  # a later fragment: no transport header
            off += 8
        else:
            return _l4(b, off, n, nh, inner, out)


def _decode(b: bytes, off: int, n: int, inner: bool, out: list) -> int:
    """Decode the Ethernet frame at ``b[off:n]`` into ``out`` = [vlan, vni,
    ethertype, src, dst, proto, sport, dport]; the outer VLAN is kept."""
    out[2:] = [0, b"", b"", 0, 0, 0]
    if off + 14 > n:
        return TRUNCATED
    etype = (b[off + 12] << 8) | b[off + 13]
    off += 14
    first = True
    while etype in _VLAN_TPIDS:
        out[2] = etype
        if off + 4 > n:
            return TRUNCATED
        if first and not inner:
            out[0] = ((b[off] << 8) | b[off + 1]) & 0x0FFF
        first = False
        etype = (b[off + 2] << 8) | b[off + 3]
        off += 4
    out[2] = etype
    if etype == 0x0800:
        return _ipv4(b, off, n, inner, out)
    if etype == 0x86DD:
        return _ipv6(b, off, n, inner, out)
    return OK


def _parse(b: bytes) -> tuple:
    out = [0, 0, 0, b"", b"", 0, 0, 0]
    status = _decode(b, 0, len(b), False, out)
    if status == MALFORMED:
        out[3:] = [b"", b"", 0, 0, 0]
    return (status, *out)


def as_bytes(buffer) -> memoryview:
    """Any C-contiguous buffer as unsigned bytes (TypeError for anything else)."""
    return memoryview(buffer).cast("B")


def parse_frame(frame) -> tuple:
    """(status, vlan, vni, ethertype, src, dst, proto, sport, dport)."""
    return _parse(bytes(as_bytes(frame)))


def _retagged(direction: int, wire: int, frame: bytes, status: int, tci: int, tpid: int) -> tuple:
    """The header sFlow exports for a frame whose tag the kernel stripped: the
    tag back after the MACs and counted in the length, as it was on the wire
    (a collector decodes the VLAN from the header bytes, not from the key)."""
    if not status & TP_STATUS_VLAN_TPID_VALID:
        tpid = 0x8100  # a kernel that does not fill tp_vlan_tpid strips 802.1Q tags only
    if len(frame) >= ETH_MACS:
        frame = frame[:ETH_MACS] + _TAG.pack(tpid, tci & 0xFFFF) + frame[ETH_MACS:]
    return direction, wire + VLAN_TAG_LEN, frame


class FlowTable:
    """A bounded flow table; see the module docstring for every rule."""

    def __init__(self, max_flows: int) -> None:
        self._max = checked(max_flows, "max_flows", 1, MAX_FLOWS_LIMIT)
        self._flows: dict[tuple, list] = {}  # key -> [packets, bytes, seq]
        self._heap: list[tuple] = []  # (bytes when pushed, seq, key), one per flow
        self._seq = 0
        self.frames = self.truncated = self.malformed = self.evicted = 0

    @property
    def size(self) -> int:
        return len(self._flows)

    @property
    def max_flows(self) -> int:
        return self._max

    def _evict(self) -> None:
        heap = self._heap
        while True:
            pushed, seq, key = heap[0]
            now = self._flows[key][1]
            if now == pushed:
                heapq.heappop(heap)
                del self._flows[key]
                self.evicted += 1
                return
            heapq.heapreplace(heap, (now, seq, key))  # grew since: look again

    def _account(self, key: tuple, frame_len: int, rate: int) -> None:
        flow = self._flows.get(key)
        if flow is None:
            if len(self._flows) >= self._max:
                self._evict()
            nbytes = min(frame_len * rate, U64)
            self._flows[key] = [rate, nbytes, self._seq]
            heapq.heappush(self._heap, (nbytes, self._seq, key))
            self._seq += 1
        else:
            flow[0] = min(flow[0] + rate, U64)
            flow[1] = min(flow[1] + frame_len * rate, U64)

    def _frame(self, b: bytes, ifindex: int, direction: int, frame_len: int, rate: int,
               vlan: int) -> int:
        status, fvlan, *rest = _parse(b)
        self.frames += 1
        if status == TRUNCATED:
            self.truncated += 1
        elif status == MALFORMED:
            self.malformed += 1
        self._account((ifindex, direction, fvlan if vlan < 0 else vlan, *rest), frame_len, rate)
        return status

    def add_frame(self, frame, ifindex: int, direction: int, frame_len: int, rate: int) -> int:
        ifindex = checked(ifindex, "ifindex", 0, U32)
        direction = checked(direction, "direction", DIR_IN, DIR_OUT)
        frame_len = checked(frame_len, "frame_len", 0, U32)
        rate = checked(rate, "rate", 1, U32)
        return self._frame(bytes(as_bytes(frame)), ifindex, direction, frame_len, rate, -1)

    def add_block(self, block, ifindex: int, rate: int, headers: list | None = None) -> int:
        ifindex = checked(ifindex, "ifindex", 0, U32)
        rate = checked(rate, "rate", 1, U32)
        if headers is not None and not isinstance(headers, list):
            raise TypeError("headers must be a list or None")
        b = as_bytes(block)
        end = len(b)
        if end < BLOCK_DESC_LEN:
            self.malformed += 1
            return 0
        num = _U32.unpack_from(b, BLOCK_NUM_PKTS)[0]
        off = _U32.unpack_from(b, BLOCK_FIRST_PKT)[0]
        done = 0
        while done < num:
            if off + TPACKET3_HDRLEN > end:
                self.malformed += 1
                break
            nxt, snaplen, wire, status, mac, tci, tpid = _HDR.unpack_from(b, off)
            data = off + mac
            if data + snaplen > end:
                self.malformed += 1
                break
            direction = DIR_OUT if b[off + PKT_SLL_PKTTYPE] == PACKET_OUTGOING else DIR_IN
            frame = bytes(b[data:data + snaplen])
            vlan = tci & 0x0FFF if status & TP_STATUS_VLAN_VALID else -1
            self._frame(frame, ifindex, direction, wire, rate, vlan)
            if headers is not None:
                if status & TP_STATUS_VLAN_VALID:
                    headers.append(_retagged(direction, wire, frame, status, tci, tpid))
                else:
                    headers.append((direction, wire, frame))
            done += 1
            if done < num:
                if nxt < TPACKET3_HDRLEN:
                    self.malformed += 1
                    break
                off += nxt
        return done

    def flows(self) -> list[tuple]:
        """(ifindex, direction, vlan, vni, ethertype, src, dst, proto, sport,
        dport, packets, bytes) for every flow, in no particular order."""
        return [(*key, flow[0], flow[1]) for key, flow in self._flows.items()]

    def clear(self) -> None:
        """Forget every flow; the counters go on."""
        self._flows.clear()
        self._heap.clear()
