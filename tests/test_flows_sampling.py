"""The sampler through the real kernel path: AF_PACKET rings with the BPF
sampler on a veth between two namespaces the tests create, the flow kernel
(agent.core: Cython or its twin), the hub.  Traffic only inside them."""
from __future__ import annotations

import math
import random
import socket
import struct
import time

import pytest

from agent import core
from agent.flows.config import SamplingConfig
from agent.flows.hub import FlowFilter, FlowHub
from agent.flows.sampler import Sampler
from tests.flows_traffic import (A_IP, B_IP, frame_key, raw_sender, reference, send_udp, tcp_exchange,
                                 udp_sink, veth_pair)
from tests.netns import ip

ETH_IP_UDP = 14 + 20 + 8


def make_sampler(ns: str, rate: int, interfaces=("va",), max_flows: int = 4096, **kw) -> Sampler:
    cfg = SamplingConfig(interfaces=tuple(interfaces), namespace=ns, rate=rate, libvirt_dir="", **kw)
    sampler = Sampler(cfg, FlowHub(max_flows, retention=60.0), core.FlowTable(max_flows), core.parse_frame,
                      flush_interval=0.2)
    sampler.start()
    return sampler


def settle(sampler: Sampler, expect_frames: int | None = None, timeout: float = 5.0) -> None:
    """Wait until the rings' blocks have retired (100 ms) and a flush has
    handed the table to the hub."""
    deadline = time.monotonic() + timeout
    time.sleep(0.45)
    while expect_frames is not None and time.monotonic() < deadline:
        if sampler.hub.table_counters.get("frames", 0) >= expect_frames:
            break
        time.sleep(0.1)
    time.sleep(0.25)


def ip_flows(hub: FlowHub) -> dict:
    """(direction, src, dst, proto, sport, dport) -> (packets, bytes) of the IPv4 TCP/UDP flows."""
    out = {}
    for f in hub.query(60, 10_000).flows:
        if f.ethertype == 0x0800 and f.protocol in (6, 17):
            out[(f.direction, socket.inet_ntoa(f.src), socket.inet_ntoa(f.dst), f.protocol, f.src_port,
                 f.dst_port)] = (f.packets, f.bytes)
    return out


def test_one_in_one_reports_exactly_the_flows_sent(netns, peer_netns):
    veth_pair(netns, peer_netns)
    sampler = make_sampler(netns, rate=1)
    sinks = [udp_sink(peer_netns, B_IP, p) for p in (6001, 6002)]
    try:
        time.sleep(0.2)  # the ring is bound
        with reference(netns, "va") as ref:
            time.sleep(0.1)
            send_udp(netns, A_IP, 5001, B_IP, 6001, 100, 37)
            send_udp(netns, A_IP, 5002, B_IP, 6002, 1000, 11)
            tcp_exchange(netns, peer_netns, A_IP, 40001, B_IP, 7001, 300_000)
            settle(sampler)
            time.sleep(0.3)
        got = ip_flows(sampler.hub)
        # UDP: exactly what was sent, L2 bytes = frame length (no FCS)
        assert got[(1, A_IP, B_IP, 17, 5001, 6001)] == (37, 37 * (ETH_IP_UDP + 100))
        assert got[(1, A_IP, B_IP, 17, 5002, 6002)] == (11, 11 * (ETH_IP_UDP + 1000))
        # Everything (TCP both ways included) equals the independent count
        want = {k: (ref.packets[k], ref.bytes[k]) for k in ref.packets}
        assert want, "the reference socket saw nothing"
        assert got == want
        tcp_out = sum(b for k, (p, b) in got.items() if k[3] == 6 and k[0] == 1)
        assert tcp_out > 300_000
        assert sampler.hub.interfaces()[0].drops == 0
    finally:
        for s in sinks:
            s.close()
        sampler.close()


@pytest.mark.parametrize("rate", [10, 100])
def test_one_in_n_estimates_within_five_sigma(netns, peer_netns, rate):
    veth_pair(netns, peer_netns)
    sampler = make_sampler(netns, rate=rate)
    sink = udp_sink(peer_netns, B_IP, 6100)
    sent, size = 30_000, 64
    try:
        time.sleep(0.2)
        send_udp(netns, A_IP, 5100, B_IP, 6100, size, sent, pace_every=500)
        settle(sampler)
        got = ip_flows(sampler.hub)[(1, A_IP, B_IP, 17, 5100, 6100)]
        p = 1.0 / rate
        sigma = rate * math.sqrt(sent * p * (1 - p))  # of the estimate samples x rate
        assert abs(got[0] - sent) <= 5 * sigma, (got, sent, sigma)
        assert got[1] == got[0] * (ETH_IP_UDP + size)  # every sample scaled by the same rate
        assert got[0] % rate == 0
        state = sampler.hub.interfaces()[0]
        assert state.rate == rate and state.drops == 0
    finally:
        sink.close()
        sampler.close()


def test_vxlan_gives_inner_five_tuple_and_vni(netns, peer_netns):
    veth_pair(netns, peer_netns)
    for ns, local, remote, inner in ((netns, A_IP, B_IP, "192.168.42.1/24"),
                                     (peer_netns, B_IP, A_IP, "192.168.42.2/24")):
        ip("link", "add", "vx0", "type", "vxlan", "id", "4242", "local", local, "remote", remote,
           "dstport", "4789", "dev", "va" if ns == netns else "vb", ns=ns)
        ip("addr", "add", inner, "dev", "vx0", ns=ns)
        ip("link", "set", "vx0", "up", ns=ns)
    sampler = make_sampler(netns, rate=1)
    sink = udp_sink(peer_netns, "192.168.42.2", 8000)
    try:
        time.sleep(0.2)
        send_udp(netns, "192.168.42.1", 7000, "192.168.42.2", 8000, 200, 9)
        settle(sampler)
        inner = [f for f in sampler.hub.query(60, 1000).flows
                 if f.vni == 4242 and f.protocol == 17 and f.dst_port == 8000]
        assert len(inner) == 1
        f = inner[0]
        assert (socket.inet_ntoa(f.src), socket.inet_ntoa(f.dst), f.src_port) == ("192.168.42.1",
                                                                                    "192.168.42.2", 7000)
        assert f.interface == "va" and f.direction == 1 and f.packets == 9
        # outer: 14 + 20 + 8 + 8 (VXLAN) + the inner frame
        assert f.bytes == 9 * (50 + ETH_IP_UDP + 200)
        by_vni = sampler.hub.query(60, 10, flt=FlowFilter(vni=4242)).flows  # inner ARP too
        assert f in by_vni and all(g.vni == 4242 for g in by_vni)
        assert f not in sampler.hub.query(60, 10, flt=FlowFilter(vni=0)).flows
    finally:
        sink.close()
        sampler.close()


def _frames(rng: random.Random) -> list[bytes]:
    """Malformed and truncated frames of many kinds, each at least 14 bytes."""
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    out = [eth + b"\x08\x00",                                 # IPv4, no header
           eth + b"\x08\x00" + b"\x45" + b"\0" * 10,          # IPv4 cut short
           eth + b"\x08\x00" + b"\x65" + b"\0" * 19,          # version 6 in an IPv4 frame
           eth + b"\x08\x00" + b"\x41" + b"\0" * 19,          # IHL 1
           eth + b"\x86\xdd" + b"\x60" + b"\0" * 5 + b"\x00\x40" + b"\0" * 32,  # hop-by-hop chain cut
           eth + b"\x81\x00",                                  # VLAN tag cut
           eth + b"\x81\x00\x00\x05\x81\x00\x00\x06\x88\xa8",  # QinQ cut
           eth + b"\x08\x00" + bytes([0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(8)
           + struct.pack("!HHHH", 1, 4789, 20, 0) + b"\x08\0\0\0\0\0\x01\0" + b"\x01"]  # VXLAN, inner cut
    for _ in range(300):
        out.append(eth + bytes(rng.choice([[0x08, 0x00], [0x86, 0xDD], [0x81, 0x00], [0x88, 0xA8]]))
                   + rng.randbytes(rng.randrange(0, 120)))
    return out


def test_malformed_frames_are_counted_and_do_not_stop_the_sampler(netns, peer_netns):
    veth_pair(netns, peer_netns)
    sampler = make_sampler(netns, rate=1)
    sender = raw_sender(peer_netns, "vb")
    sink = udp_sink(peer_netns, B_IP, 6200)
    try:
        time.sleep(0.2)
        frames = _frames(random.Random(14))
        with reference(netns, "va") as ref:
            time.sleep(0.1)
            for frame in frames:
                sender.send(frame)
            time.sleep(0.3)
        # the kernel drops some before any tap (a VLAN tag it cannot pull)
        assert ref.frames > len(frames) * 0.8
        settle(sampler, expect_frames=ref.frames)
        counters = sampler.hub.table_counters
        assert counters["frames"] == ref.frames
        assert counters["truncated"] + counters["malformed"] >= 8
        assert sampler.errors == 0
        # and it still accounts good traffic exactly
        send_udp(netns, A_IP, 5200, B_IP, 6200, 10, 5)
        settle(sampler)
        assert ip_flows(sampler.hub)[(1, A_IP, B_IP, 17, 5200, 6200)] == (5, 5 * (ETH_IP_UDP + 10))
        assert sampler._thread.is_alive()
    finally:
        sender.close()
        sink.close()
        sampler.close()


def test_frame_key_helper_reads_udp():
    frame = (b"\0" * 12 + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0])
             + socket.inet_aton("1.2.3.4") + socket.inet_aton("5.6.7.8") + struct.pack("!HHHH", 1, 2, 8, 0))
    assert frame_key(frame) == ("1.2.3.4", "5.6.7.8", 17, 1, 2)


def test_rename_out_of_the_patterns_closes_the_ring_and_back_opens_one(netns, peer_netns):
    veth_pair(netns, peer_netns)
    sampler = make_sampler(netns, rate=1)
    try:
        deadline = time.monotonic() + 5

        def wait_for(names):
            while set(sampler.interfaces().values()) != names:
                assert time.monotonic() < deadline, sampler.interfaces()
                time.sleep(0.05)
        wait_for({"va"})
        ip("link", "set", "va", "down", ns=netns)
        ip("link", "set", "va", "name", "xa", ns=netns)
        wait_for(set())
        ip("link", "set", "xa", "name", "va", ns=netns)
        ip("link", "set", "va", "up", ns=netns)
        wait_for({"va"})
        assert sampler.errors == 0
    finally:
        sampler.close()
