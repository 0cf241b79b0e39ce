"""The packet ring backend on its own: the BPF program, the ring's blocks
and its statistics, on a veth in namespaces the test creates."""
from __future__ import annotations

import select
import struct

import pytest

from agent.backends.packet_ring import (PacketRing, fd_count, sampling_program, SKF_AD_RANDOM)
from tests.flows_traffic import A_IP, B_IP, send_udp, udp_sink, veth_pair


def test_sampling_program():
    assert sampling_program(1, 128) == [(0x06, 0, 0, 128)]
    prog = sampling_program(400, 96)
    assert prog[0] == (0x20, 0, 0, 0xFFFFF000 + SKF_AD_RANDOM)  # ld rand
    assert prog[1] == (0x94, 0, 0, 400)                          # mod #400
    assert prog[3] == (0x06, 0, 0, 96) and prog[4] == (0x06, 0, 0, 0)
    with pytest.raises(ValueError):
        sampling_program(0, 128)


def test_ring_hands_over_snapped_blocks_and_closes_cleanly(netns, peer_netns):
    ifindex = veth_pair(netns, peer_netns)
    fds = fd_count()
    sink = udp_sink(peer_netns, B_IP, 6500)
    ring = PacketRing("va", ifindex, 1, 64, netns=netns)
    try:
        assert fd_count() == fds + 2  # the ring's socket (and the sink's)
        send_udp(netns, A_IP, 5500, B_IP, 6500, 400, 6)
        poller = select.poll()
        poller.register(ring.fileno(), select.POLLIN)
        assert poller.poll(2000)
        seen = []
        for block in ring.blocks():
            num, first = struct.unpack_from("=II", block, 12)
            off = first
            for _ in range(num):
                nxt, _, _, snaplen, wire = struct.unpack_from("=IIIII", block, off)
                seen.append((snaplen, wire))
                off += nxt
        assert seen == [(64, 14 + 20 + 8 + 400)] * 6  # snapped to 64, the wire length kept
        assert list(ring.blocks()) == []  # given back
        assert ring.stats() == (6, 0)
    finally:
        ring.close()
        sink.close()
    assert fd_count() == fds
    with pytest.raises(ValueError):
        PacketRing("va", 0, 1, 64, netns=netns)
