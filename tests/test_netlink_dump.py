"""StatsDumper on the real kernel, in network namespaces the tests create and
always delete: dumps parsed by both implementations equal what
``ip -s -s -j link`` reports, before and after real traffic, and the dumper
copes with multi-datagram dumps, replies it did not ask for and namespaces
that do not exist.  Nothing here touches the host's own interfaces."""
from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from agent.backends.netlink import StatsDumper, stats
from agent.core import netlink_py as wire
from agent.core.netlink_py import STATS_FIELDS
from tests.fixtures.netlink.record import ip_counters, many_veths, ping, veth
from tests.netns import ip, udp_burst
from tests.test_netlink_parser import load

pytestmark = [pytest.mark.integration, pytest.mark.netns]
WIDTH = len(STATS_FIELDS)


@pytest.fixture(params=["python", "cython"])
def nl(request):
    return load(request.param)


def parsed(nl, raw: bytes) -> dict[int, dict[str, int]]:
    ifindex, counters = nl.parse_stats_dump(raw)
    return {ifindex[r]: dict(zip(STATS_FIELDS, counters[r * WIDTH:(r + 1) * WIDTH]))
            for r in range(len(ifindex))}


def assert_equal_to_ip(got: dict, want: dict) -> None:
    """Every counter ip reports, for every interface, exactly."""
    assert sorted(got) == sorted(want)
    for i, link in want.items():
        assert {f: got[i][f] for f in link["stats"]} == link["stats"], link["ifname"]


def messages(raw: bytes):
    off = 0
    while off < len(raw):
        length, kind, flags, seq, pid = wire.NLMSGHDR.unpack_from(raw, off)
        yield kind, seq
        off += (length + 3) & ~3


def test_fresh_namespace_holds_lo_alone(nl, netns):
    with StatsDumper(netns) as dumper:
        assert dumper.rcvbuf >= 4 << 20
        first, second = dumper.dump(), dumper.dump()
    for raw, seq in ((first, 1), (second, 2)):
        assert [k for k, _ in messages(raw)] == [wire.RTM_NEWSTATS, wire.NLMSG_DONE]
        assert {s for _, s in messages(raw)} == {seq}
    assert list(parsed(nl, first)) == [1]
    assert_equal_to_ip(parsed(nl, second), ip_counters(netns))


def test_traffic_deltas_equal_ip_link(nl, netns, peer_netns):
    """veth0 in one namespace, its peer in another: with both ends in one
    namespace, traffic between their addresses would go through ``lo``."""
    a, b = netns, peer_netns
    veth(a, "veth0", "veth0p", b)
    ip("addr", "add", "10.200.0.1/30", "dev", "veth0", ns=a)
    ip("addr", "add", "10.200.0.2/30", "dev", "veth0p", ns=b)
    ip("link", "set", "veth0", "up", ns=a)
    ip("link", "set", "veth0p", "up", ns=b)
    with StatsDumper(a) as da, StatsDumper(b) as db:
        ping(a, "10.200.0.2", 3)  # resolves the neighbour, too
        before = parsed(nl, da.dump()), parsed(nl, db.dump())
        ip_before = ip_counters(a), ip_counters(b)
        udp_burst(a, "10.200.0.2", count=200, size=1000)
        ping(a, "10.200.0.2", 2)
        after = parsed(nl, da.dump()), parsed(nl, db.dump())
        ip_after = ip_counters(a), ip_counters(b)
    for got, want in zip(before + after, ip_before + ip_after):
        assert_equal_to_ip(got, want)
    veth0 = next(i for i, l in ip_after[0].items() if l["ifname"] == "veth0")
    peer = next(i for i, l in ip_after[1].items() if l["ifname"] == "veth0p")

    def delta(side, ifindex, field):
        return after[side][ifindex][field] - before[side][ifindex][field]

    # 200 frames of 1000 + 8 + 20 + 14 bytes, and 2 echo requests of 98.
    assert delta(0, veth0, "tx_packets") == 202
    assert delta(0, veth0, "tx_bytes") == 200 * 1042 + 2 * 98
    assert delta(1, peer, "rx_packets") == 202 and delta(1, peer, "rx_bytes") == 200 * 1042 + 196
    assert delta(0, veth0, "rx_packets") == delta(1, peer, "tx_packets") >= 2


def test_dump_across_datagrams_equals_ip_link(nl, netns):
    many_veths(netns, 200)
    with StatsDumper(netns) as dumper:
        dumper.dump()  # the first datagram of a socket's first dump is small
        raw = dumper.dump()
        assert dumper.datagrams >= 3  # ~32 KiB each
    assert [k for k, _ in messages(raw)].count(wire.NLMSG_DONE) == 1
    got = parsed(nl, raw)
    assert len(got) == 401
    assert_equal_to_ip(got, ip_counters(netns))


def test_replies_to_someone_elses_request_are_read_away(nl, netns):
    many_veths(netns, 200)
    with StatsDumper(netns) as dumper:
        other = socket.socket(fileno=os.dup(dumper.fileno()))
        try:
            other.send(wire.pack_getstats_request(999))
            other.recv(65536)  # the rest of that dump is left running
            raw = dumper.dump()
            assert {seq for _, seq in messages(raw)} == {1}
            other.send(wire.pack_getstats_request(998))  # answered in full, unread
            again = dumper.dump()
            assert {seq for _, seq in messages(again)} == {2}
        finally:
            other.close()
    assert len(parsed(nl, raw)) == len(parsed(nl, again)) == 401


def test_stats_convenience(nl, netns):
    veth(netns, "x0", "x1")
    ifindex, counters = stats(netns)
    assert sorted(ifindex) == sorted(ip_counters(netns))
    assert len(counters) == WIDTH * len(ifindex) == WIDTH * 3


def test_missing_namespace_is_not_created():
    name = f"hostagent-test-missing-{os.getpid()}"
    with pytest.raises(FileNotFoundError):
        StatsDumper(name)
    assert not os.path.exists(f"/var/run/netns/{name}")


def test_no_thread_is_left_in_the_namespace(netns):
    own = os.stat("/proc/thread-self/ns/net").st_ino
    threads = threading.active_count()
    with StatsDumper(netns) as inside, StatsDumper() as here:
        assert os.stat("/proc/thread-self/ns/net").st_ino == own
        assert threading.active_count() == threads
        inside_rows = wire.parse_stats_dump(inside.dump())[0]
        here_rows = wire.parse_stats_dump(here.dump())[0]
    assert list(inside_rows) == [1]
    assert sorted(here_rows) == sorted(link["ifindex"] for link in
                                       json.loads(ip("-j", "link", "show")))  # read only
