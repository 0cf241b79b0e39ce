"""The flow kernel: known frames decoded as expected and TPACKET_V3 blocks
walked, on both implementations; then the Cython module against its
pure-Python twin (agent/core/flows_py.py, the specification) on thousands of
generated frames and blocks, malformed ones included.

The Cython cases skip when the extension is not built, and fail instead when
``HOSTAGENT_REQUIRE_EXTENSIONS=1``.
"""
from __future__ import annotations

import random
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import flows_py
from tests import flow_frames as ff
from tests.helpers import load_impl

OK, TRUNC, BAD = flows_py.OK, flows_py.TRUNCATED, flows_py.MALFORMED
A4, B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
OUT_A4, OUT_B4 = bytes([192, 168, 0, 1]), bytes([192, 168, 0, 2])


def load(name: str):
    return load_impl(flows_py, None if name == "python" else "_flows")


@pytest.fixture(params=["python", "cython"])
def k(request):
    return load(request.param)


@pytest.fixture(scope="module")
def ck():
    return load("cython")


def tcp4(sport=1234, dport=80, tags=(), payload=b""):
    return ff.ether(ff.ipv4(A4, B4, 6, ff.l4(6, sport, dport, payload)), 0x0800, tags)


def vxlan_frame(vni, inner, dport=4789, flags=0x08):
    udp = ff.l4(17, 50000, dport, ff.vxlan(vni, inner, flags))
    return ff.ether(ff.ipv4(OUT_A4, OUT_B4, 17, udp), 0x0800, [(0x8100, 7)])


# --- (a) known frames, both implementations --------------------------------

KNOWN = {
    "tcp4": (tcp4(), (OK, 0, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "udp6": (ff.ether(ff.ipv6(A6, B6, 17, ff.l4(17, 53, 5353)), 0x86DD),
             (OK, 0, 0, 0x86DD, A6, B6, 17, 53, 5353)),
    "icmp4": (ff.ether(ff.ipv4(A4, B4, 1, ff.l4(1, 8, 0, b"ping")), 0x0800),
              (OK, 0, 0, 0x0800, A4, B4, 1, 8, 0)),
    "icmp6": (ff.ether(ff.ipv6(A6, B6, 58, ff.l4(58, 128, 0, b"ping")), 0x86DD),
              (OK, 0, 0, 0x86DD, A6, B6, 58, 128, 0)),
    "dot1q": (tcp4(tags=[(0x8100, 42)]), (OK, 42, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "qinq": (tcp4(tags=[(0x88A8, 300), (0x8100, 42)]), (OK, 300, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "qinq_9100": (tcp4(tags=[(0x9100, 5), (0x8100, 6), (0x8100, 7)]),
                  (OK, 5, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "vid_masks_pcp": (tcp4(tags=[(0x8100, 0xE000 | 42)]), (OK, 42, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "ipv4_options": (ff.ether(ff.ipv4(A4, B4, 17, ff.l4(17, 7, 9), opts=b"\x01" * 8), 0x0800),
                     (OK, 0, 0, 0x0800, A4, B4, 17, 7, 9)),
    "ipv4_first_fragment": (ff.ether(ff.ipv4(A4, B4, 17, ff.l4(17, 7, 9, bytes(30)), mf=True), 0x0800),
                            (OK, 0, 0, 0x0800, A4, B4, 17, 7, 9)),
    "ipv4_later_fragment": (ff.ether(ff.ipv4(A4, B4, 17, bytes(30), frag_off=185), 0x0800),
                            (OK, 0, 0, 0x0800, A4, B4, 17, 0, 0)),
    "ipv6_ext_chain": (ff.ether(ff.ipv6(A6, B6, 6, ff.l4(6, 22, 2222),
                                        ext=[(0, bytes(6)), (43, bytes(14)), (60, bytes(6)),
                                             (51, bytes(10)), ff.frag6(0, mf=True)]), 0x86DD),
                       (OK, 0, 0, 0x86DD, A6, B6, 6, 22, 2222)),
    "ipv6_later_fragment": (ff.ether(ff.ipv6(A6, B6, 17, bytes(16), ext=[ff.frag6(100)]), 0x86DD),
                            (OK, 0, 0, 0x86DD, A6, B6, 17, 0, 0)),
    "ipv6_no_next": (ff.ether(ff.ipv6(A6, B6, 59, b"", ext=[(60, bytes(6))]), 0x86DD),
                     (OK, 0, 0, 0x86DD, A6, B6, 59, 0, 0)),
    "esp4": (ff.ether(ff.ipv4(A4, B4, 50, bytes(16)), 0x0800), (OK, 0, 0, 0x0800, A4, B4, 50, 0, 0)),
    "arp": (ff.ether(bytes(28), 0x0806, [(0x8100, 9)]), (OK, 9, 0, 0x0806, b"", b"", 0, 0, 0)),
    "vxlan": (vxlan_frame(5001, ff.ether(ff.ipv6(A6, B6, 6, ff.l4(6, 4000, 443)), 0x86DD,
                                         [(0x8100, 99)])),
              (OK, 7, 5001, 0x86DD, A6, B6, 6, 4000, 443)),
    "vxlan_inner_arp": (vxlan_frame(77, ff.ether(bytes(28), 0x0806)),
                        (OK, 7, 77, 0x0806, b"", b"", 0, 0, 0)),
    "vxlan_no_i_flag": (vxlan_frame(77, tcp4(), flags=0),
                        (OK, 7, 0, 0x0800, OUT_A4, OUT_B4, 17, 50000, 4789)),
    "vxlan_not_nested": (vxlan_frame(1, vxlan_frame(2, tcp4())),
                         (OK, 7, 1, 0x0800, OUT_A4, OUT_B4, 17, 50000, 4789)),
    "udp_other_port": (vxlan_frame(77, tcp4(), dport=4790),
                       (OK, 7, 0, 0x0800, OUT_A4, OUT_B4, 17, 50000, 4790)),
    # cut short: what was decoded stays
    "runt": (bytes(13), (TRUNC, 0, 0, 0, b"", b"", 0, 0, 0)),
    "tag_cut": (tcp4(tags=[(0x8100, 42)])[:16], (TRUNC, 0, 0, 0x8100, b"", b"", 0, 0, 0)),
    "inner_tag_cut": (tcp4(tags=[(0x88A8, 42), (0x8100, 3)])[:20], (TRUNC, 42, 0, 0x8100, b"", b"", 0, 0, 0)),
    "ipv4_cut": (tcp4()[:33], (TRUNC, 0, 0, 0x0800, b"", b"", 0, 0, 0)),
    "tcp_ports_only": (tcp4()[:14 + 20 + 4], (TRUNC, 0, 0, 0x0800, A4, B4, 6, 1234, 80)),
    "tcp_no_ports": (tcp4()[:14 + 20 + 3], (TRUNC, 0, 0, 0x0800, A4, B4, 6, 0, 0)),
    "ipv4_options_cut": (ff.ether(ff.ipv4(A4, B4, 17, ff.l4(17, 7, 9), opts=bytes(8)), 0x0800)[:38],
                         (TRUNC, 0, 0, 0x0800, A4, B4, 17, 0, 0)),
    "ipv6_chain_cut": (ff.ether(ff.ipv6(A6, B6, 6, ff.l4(6, 1, 2), ext=[(0, bytes(6)), (60, bytes(6))]),
                                0x86DD)[:14 + 40 + 9], (TRUNC, 0, 0, 0x86DD, A6, B6, 60, 0, 0)),
    "vxlan_header_cut": (vxlan_frame(9, tcp4())[:18 + 20 + 8 + 7],
                         (TRUNC, 7, 0, 0x0800, OUT_A4, OUT_B4, 17, 50000, 4789)),
    "vxlan_inner_cut": (vxlan_frame(9, tcp4())[:18 + 20 + 8 + 8 + 14 + 20 + 2],
                        (TRUNC, 7, 9, 0x0800, A4, B4, 6, 0, 0)),
    # malformed: a non-IP flow with the ethertype as seen
    "ipv4_version": (ff.ether(ff.ipv6(A6, B6, 6, ff.l4(6, 1, 2)), 0x0800, [(0x8100, 3)]),
                     (BAD, 3, 0, 0x0800, b"", b"", 0, 0, 0)),
    "ipv4_ihl": (ff.ether(b"\x44" + tcp4()[15:], 0x0800), (BAD, 0, 0, 0x0800, b"", b"", 0, 0, 0)),
    "ipv6_version": (ff.ether(ff.ipv4(A4, B4, 6, ff.l4(6, 1, 2)) + bytes(20), 0x86DD),
                     (BAD, 0, 0, 0x86DD, b"", b"", 0, 0, 0)),
    "vxlan_inner_bad": (vxlan_frame(12, ff.ether(bytes(40), 0x0800)),
                        (BAD, 7, 12, 0x0800, b"", b"", 0, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_frame_decodes(k, name):
    frame, expected = KNOWN[name]
    assert k.parse_frame(frame) == expected
    assert k.parse_frame(bytearray(frame)) == expected
    assert k.parse_frame(memoryview(frame)) == expected


def test_flows_aggregate_scaled_by_rate(k):
    table = k.FlowTable(16)
    assert table.add_frame(tcp4(), 3, flows_py.DIR_OUT, 1500, 100) == OK
    assert table.add_frame(tcp4(payload=bytes(9)), 3, flows_py.DIR_OUT, 1000, 100) == OK
    assert table.add_frame(tcp4()[:20], 3, flows_py.DIR_IN, 60, 1) == TRUNC
    assert table.add_frame(KNOWN["ipv4_version"][0], 4, flows_py.DIR_IN, 80, 2) == BAD
    assert sorted(table.flows()) == sorted([
        (3, 1, 0, 0, 0x0800, A4, B4, 6, 1234, 80, 200, 250000),
        (3, 0, 0, 0, 0x0800, b"", b"", 0, 0, 0, 1, 60),
        (4, 0, 3, 0, 0x0800, b"", b"", 0, 0, 0, 2, 160)])
    assert (table.frames, table.truncated, table.malformed, table.evicted, table.size,
            table.max_flows) == (4, 1, 1, 0, 3, 16)
    table.clear()
    assert table.flows() == [] and table.size == 0 and table.frames == 4


def test_full_table_evicts_fewest_bytes_oldest_first(k):
    table = k.FlowTable(3)
    for port, size in ((1, 100), (2, 50), (3, 50)):
        table.add_frame(tcp4(sport=port), 1, 0, size, 1)
    table.add_frame(tcp4(sport=4), 1, 0, 60, 1)  # 2 and 3 tie at 50: 2, the older, goes
    table.add_frame(tcp4(sport=3), 1, 0, 20, 1)  # 3 grows to 70
    table.add_frame(tcp4(sport=5), 1, 0, 1, 1)  # 4 (60) goes, not 3 (70 now)
    table.add_frame(tcp4(sport=6), 1, 0, 5, 1)  # 5 goes, the newest but the smallest
    assert {(f[8], f[10], f[11]) for f in table.flows()} == {(1, 1, 100), (3, 2, 70), (6, 1, 5)}
    assert (table.evicted, table.size) == (3, 3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_eviction_matches_a_naive_model(k, seed):
    """Few lengths and many repeats: ties, flows that grew since they were
    pushed on the heap; the survivors are always those the plain rule keeps."""
    rnd, table, model, seq = random.Random(seed), k.FlowTable(8), {}, 0
    for step in range(6000):
        port, size = rnd.randrange(30), rnd.choice((0, 1, 1, 2, 3))
        table.add_frame(tcp4(sport=port), 1, 0, size, 1)
        if port not in model:
            if len(model) == 8:
                del model[min(model, key=lambda p: (model[p][1], model[p][2]))]
            model[port] = [0, 0, seq]
            seq += 1
        model[port][0] += 1
        model[port][1] += size
        if step % 100 == 0:
            assert sorted((f[8], f[10], f[11]) for f in table.flows()) == \
                sorted((p, n, b) for p, (n, b, _) in model.items())
    assert table.evicted == seq - 8


def test_counts_saturate(k):
    table = k.FlowTable(1)
    big = flows_py.U32
    for _ in range(3):
        table.add_frame(tcp4(), big, 1, big, big)
    assert table.flows()[0][-2:] == (3 * big, flows_py.U64)


@pytest.mark.parametrize("call, exc", [
    (lambda t: t.add_frame(b"", -1, 0, 1, 1), ValueError),
    (lambda t: t.add_frame(b"", 2**32, 0, 1, 1), ValueError),
    (lambda t: t.add_frame(b"", 1, 2, 1, 1), ValueError),
    (lambda t: t.add_frame(b"", 1, 0, -1, 1), ValueError),
    (lambda t: t.add_frame(b"", 1, 0, 1, 0), ValueError),
    (lambda t: t.add_frame(b"", 1, 0, 1.5, 1), TypeError),
    (lambda t: t.add_frame("text", 1, 0, 1, 1), TypeError),
    (lambda t: t.add_block(b"", 1, 0), ValueError),
    (lambda t: t.add_block(b"", 1, 1, headers=()), TypeError),
])
def test_bad_arguments_refused(k, call, exc):
    table = k.FlowTable(4)
    with pytest.raises(exc):
        call(table)
    assert table.frames == 0 and table.flows() == []


@pytest.mark.parametrize("size", [0, -1, flows_py.MAX_FLOWS_LIMIT + 1])
def test_bad_sizes_refused(k, size):
    with pytest.raises(ValueError):
        k.FlowTable(size)


# --- (b) TPACKET_V3 blocks, both implementations ---------------------------

def three_packet_block():
    v6 = ff.ether(ff.ipv6(A6, B6, 17, ff.l4(17, 5, 6)), 0x86DD)
    return ff.block([(tcp4(), 1514, 4, None),  # PACKET_OUTGOING
                     (v6[:40], 400, 0, None),  # PACKET_HOST, captured short of its IPv6 header
                     (tcp4(tags=[(0x8100, 3)]), 90, 1, 0x2000 | 55)])  # the kernel took tag 55


def test_block_walked_like_frames(k):
    table, headers = k.FlowTable(8), []
    data = three_packet_block()
    assert table.add_block(data, 9, 10, headers) == 3
    assert sorted(table.flows()) == sorted([
        (9, 1, 0, 0, 0x0800, A4, B4, 6, 1234, 80, 10, 15140),
        (9, 0, 0, 0, 0x86DD, b"", b"", 0, 0, 0, 10, 4000),
        (9, 0, 55, 0, 0x0800, A4, B4, 6, 1234, 80, 10, 900)])
    v6 = ff.ether(ff.ipv6(A6, B6, 17, ff.l4(17, 5, 6)), 0x86DD)
    assert headers == [(1, 1514, tcp4()), (0, 400, v6[:40]),
                       (0, 94, tcp4(tags=[(0x8100, 0x2000 | 55), (0x8100, 3)]))]  # the tag put back
    assert (table.frames, table.truncated, table.malformed) == (3, 1, 0)
    assert table.add_block(memoryview(bytearray(data)), 9, 10) == 3  # any buffer, no headers
    assert table.frames == 6


def test_block_cut_anywhere_is_never_read_past(k):
    data = three_packet_block()
    whole = k.FlowTable(8)
    whole.add_block(data, 1, 1)
    ends = [(at + 68, at + 80 + snap) for at, snap in  # header, then frame at tp_mac = 80
            zip(ff.packet_offsets(data), (54, 40, 58))]
    for cut in range(len(data)):
        table = k.FlowTable(8)
        walked = table.add_block(data[:cut], 1, 1)
        whole_ones = next((i for i, (hdr, frame) in enumerate(ends) if max(hdr, frame) > cut), 3)
        assert walked == table.frames == whole_ones
        assert table.malformed == (0 if walked == 3 else 1)  # the tail padding may go
        assert set(table.flows()) <= set(whole.flows())


def with_tpid(data: bytes, tpids) -> bytes:
    """``data`` with packet i's tp_vlan_tpid set and TP_STATUS_VLAN_TPID_VALID
    raised where ``tpids[i]`` is not None (ff.block leaves that flag clear)."""
    out = bytearray(data)
    for at, tpid in zip(ff.packet_offsets(data), tpids):
        if tpid is not None:
            status = int.from_bytes(out[at + 20:at + 24], sys.byteorder) | 0x40
            out[at + 20:at + 24] = status.to_bytes(4, sys.byteorder)
            out[at + 36:at + 38] = tpid.to_bytes(2, sys.byteorder)
    return bytes(out)


def test_stripped_tag_put_back_in_exported_headers(k):
    """sFlow gets the frame as it was on the wire: the tag the kernel moved to
    tp_vlan_tci back after the MACs (PCP kept), 4 more bytes in the length,
    and the header decodes to the VLAN the flow key has."""
    data = with_tpid(ff.block([(tcp4(), 60, 0, 0xA000 | 100),        # PCP 5, no TPID: 802.1Q
                               (tcp4(sport=7), 1500, 4, 200),         # outgoing, TPID 802.1ad
                               (tcp4(sport=8)[:10], 70, 0, 300),      # cut inside the MACs
                               (tcp4(sport=9), 80, 0, None)]),        # never tagged
                     [None, 0x88A8, None, None])
    table, headers = k.FlowTable(8), []
    assert table.add_block(data, 3, 1, headers) == 4
    assert headers == [(0, 64, tcp4(tags=[(0x8100, 0xA000 | 100)])),
                       (1, 1504, tcp4(sport=7, tags=[(0x88A8, 200)])),
                       (0, 74, tcp4(sport=8)[:10]),  # no room for the tag, the length counts it
                       (0, 80, tcp4(sport=9))]
    vlans = {f[8]: f[2] for f in table.flows()}  # sport -> the flow key's VLAN
    assert vlans == {1234: 100, 7: 200, 0: 300, 9: 0}  # the cut frame has no ports
    for _, _, header in (headers[0], headers[1], headers[3]):
        status, vlan, *_rest, sport, _dport = k.parse_frame(header)
        assert (status, vlan) == (OK, vlans[sport])
    assert (table.frames, table.truncated, table.malformed) == (4, 1, 0)


def test_block_lying_about_its_packets(k):
    one = ff.block([(tcp4(), 60, 0, None)])
    more = bytearray(one)
    more[12:16] = (5).to_bytes(4, sys.byteorder)
    table = k.FlowTable(8)
    assert table.add_block(bytes(more), 1, 1) == 1  # the last packet's next offset is 0
    assert (table.frames, table.malformed) == (1, 1)
    assert k.FlowTable(8).add_block(ff.block([]), 1, 1) == 0


def test_one_thread_at_a_time(ck):
    """The walk runs without the GIL: a second thread is refused, never let in."""
    table = ck.FlowTable(64)
    data = ff.block([(f, 1500, 0, None) for f in ff.sample_mix(2000)] * 4)
    walked, refused = [], []

    def hammer():
        for _ in range(30):
            try:
                walked.append(table.add_block(data, 1, 1))
            except RuntimeError:
                refused.append(1)
            try:
                table.flows()
            except RuntimeError:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(walked) + len(refused) == 90 and set(walked) <= {8000}
    assert table.frames == 8000 * len(walked) and table.malformed == 0


# --- (c) the Cython module against its twin, on generated input -------------

def _addr(draw, n):
    return draw(st.sampled_from([bytes(n), bytes([10] + [0] * (n - 2) + [1]),
                                 bytes(range(1, n + 1))]))


@st.composite
def l4_part(draw, proto):
    sport = draw(st.sampled_from([0, 53, 4789, 65535]) | st.integers(0, 65535))
    if proto in (1, 58):
        return ff.l4(proto, draw(st.integers(0, 255)), draw(st.integers(0, 255)))
    return ff.l4(proto, sport, draw(st.sampled_from([80, 4789, 443]) | st.integers(0, 65535)),
                 draw(st.binary(max_size=12)))


@st.composite
def frames(draw, inner_ok=True):
    """A frame of every shape the decoder knows, often VXLAN with another inside."""
    proto = draw(st.sampled_from([6, 17, 1, 58, 50, 47, 59]))
    kind = draw(st.sampled_from(["v4", "v6", "other"]))
    payload = draw(l4_part(proto))
    if proto == 17 and inner_ok and draw(st.booleans()):
        inner = draw(frames(inner_ok=False))
        payload = ff.l4(17, 1000, 4789, ff.vxlan(draw(st.integers(0, 2**24 - 1)), inner,
                                                 draw(st.sampled_from([0x08, 0x08, 0, 0xFF]))))
    if kind == "v4":
        opts = bytes(4 * draw(st.integers(0, 10)))
        frag = draw(st.sampled_from([0, 0, 1, 8191]))
        l3 = ff.ipv4(_addr(draw, 4), _addr(draw, 4), proto, payload, frag_off=frag,
                     mf=draw(st.booleans()), opts=opts)
        etype = 0x0800
    elif kind == "v6":
        ext = draw(st.lists(st.sampled_from([(0, bytes(6)), (43, bytes(22)), (60, bytes(14)),
                                             (51, bytes(10)), (135, bytes(6)), ff.frag6(0),
                                             ff.frag6(0, mf=True), ff.frag6(7)]), max_size=4))
        l3 = ff.ipv6(_addr(draw, 16), _addr(draw, 16), proto, payload, ext=ext)
        etype = 0x86DD
    else:
        etype = draw(st.sampled_from([0x0806, 0x88CC, 0x0041, 0x8100]))
        l3 = draw(st.binary(max_size=40))
    tags = draw(st.lists(st.tuples(st.sampled_from([0x8100, 0x88A8, 0x9100]),
                                   st.integers(0, 0xFFFF)), max_size=3))
    return ff.ether(l3, etype, tags)


@st.composite
def damaged(draw):
    """A frame cut short, with bytes overwritten, or random bytes."""
    how = draw(st.sampled_from(["whole", "cut", "poke", "poke_cut", "random"]))
    if how == "random":
        return draw(st.binary(max_size=160))
    frame = bytearray(draw(frames()))
    if how in ("poke", "poke_cut"):
        for _ in range(draw(st.integers(1, 4))):
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    if how in ("cut", "poke_cut"):
        frame = frame[:draw(st.integers(0, len(frame)))]
    return bytes(frame)


def feed(mod, max_flows, items):
    table = mod.FlowTable(max_flows)
    statuses = [table.add_frame(f, ifx, d, ln, rate) for f, ifx, d, ln, rate in items]
    return statuses, sorted(table.flows()), (table.frames, table.truncated, table.malformed,
                                             table.evicted, table.size)


LENGTHS = st.sampled_from([0, 1, 60, 64, 1500]) | st.integers(0, 9000)
RATES = st.sampled_from([1, 1, 2, 10, 2**32 - 1])


@st.composite
def frame_runs(draw):
    """Frames drawn from a small pool, so that flows repeat, grow and tie."""
    pool = draw(st.lists(damaged(), min_size=1, max_size=8))
    picks = st.tuples(st.integers(0, len(pool) - 1), st.integers(0, 1), st.integers(0, 1),
                      LENGTHS, RATES)
    return [(pool[i], ifx, d, ln, rate) for i, ifx, d, ln, rate in draw(st.lists(picks, max_size=80))]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=damaged())
def test_parse_parity(ck, frame):
    assert ck.parse_frame(frame) == flows_py.parse_frame(frame)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_flows=st.integers(1, 12), items=frame_runs())
def test_table_parity(ck, max_flows, items):
    assert feed(ck, max_flows, items) == feed(flows_py, max_flows, items)


def test_every_prefix_parity(ck):
    """Known frames and a seeded mix, cut at every byte."""
    rnd = random.Random(7)
    cases = [f for f, _ in KNOWN.values()] + ff.sample_mix(40, seed=3)
    for frame in cases:
        for cut in range(len(frame) + 1):
            assert ck.parse_frame(frame[:cut]) == flows_py.parse_frame(frame[:cut]), (frame, cut)
    items = [(f[:rnd.randrange(len(f) + 1)], rnd.randrange(4), rnd.randrange(2),
              rnd.randrange(1600), rnd.choice([1, 100])) for f in cases * 20]
    assert feed(ck, 50, items) == feed(flows_py, 50, items)


FIELD_LIES = st.sampled_from([0, 1, 47, 48, 60, 67, 68, 69, 80, 4096, 2**31, 2**32 - 1])


@st.composite
def blocks(draw):
    pkts = draw(st.lists(st.tuples(damaged(), LENGTHS, st.sampled_from([0, 1, 3, 4, 5]),
                                   st.none() | st.integers(0, 0xFFFF)), max_size=8))
    data = bytearray(ff.block(pkts, first=draw(st.sampled_from([48, 64, 200]))))
    starts = [16, 12] + [at + field for at in ff.packet_offsets(data) for field in (0, 12, 24)]
    for _ in range(draw(st.integers(0, 3))):  # lie in a header: counts, offsets, lengths
        at = draw(st.sampled_from(starts))
        data[at:at + 4] = draw(FIELD_LIES).to_bytes(4, sys.byteorder)
    for _ in range(draw(st.integers(0, 2))):  # or anywhere
        at = draw(st.integers(0, max(0, len(data) - 4)))
        data[at:at + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data[:draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


def walk(mod, max_flows, data):
    table, headers = mod.FlowTable(max_flows), []
    n = [table.add_block(d, i, rate, headers) for i, (d, rate) in enumerate(data)]
    return n, headers, sorted(table.flows()), (table.frames, table.truncated, table.malformed,
                                               table.evicted, table.size)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_flows=st.integers(1, 16),
       data=st.lists(st.tuples(blocks(), st.sampled_from([1, 7, 2**32 - 1])), max_size=4))
def test_block_parity(ck, max_flows, data):
    assert walk(ck, max_flows, data) == walk(flows_py, max_flows, data)


@settings(max_examples=200, deadline=None)
@given(pkts=st.lists(st.tuples(st.binary(max_size=20) | frames(), LENGTHS | st.just(2**32 - 1), st.sampled_from([0, 4]),
                               st.none() | st.integers(0, 2**32 - 1)), min_size=1, max_size=6),
       tpids=st.lists(st.none() | st.integers(0, 0xFFFF), min_size=6, max_size=6))
def test_retagged_headers_parity(ck, pkts, tpids):
    """Stripped tags (any TCI bits, TPID or not, frames around the 12 MAC
    bytes, lengths up to 2**32 - 1 + 4) come back identically."""
    data = [(with_tpid(ff.block(pkts), tpids), 1)]
    assert walk(ck, 8, data) == walk(flows_py, 8, data)


def test_mix_parity_at_scale(ck):
    """Thousands of realistic headers through a table that must evict."""
    mix = ff.sample_mix(3000, seed=11)
    data = [(ff.block([(f, 64 + i % 1400, i % 5, None) for i, f in enumerate(mix[j:j + 500])]), 100)
            for j in range(0, len(mix), 500)]
    c, p = walk(ck, 64, data), walk(flows_py, 64, data)
    assert c == p and c[3][3] > 0  # evictions happened, identically
