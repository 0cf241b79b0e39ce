"""The network backend's own netlink: the dump parser agrees with pyroute2's
decoder on a namespace holding every kind this kernel has, errors and
malformed framing are reported, and a plan's steps stop at the first one the
kernel refuses."""
from __future__ import annotations

import errno
import json
import socket
import subprocess

import pytest
from pyroute2 import IPRoute

from agent.backends import netconf_wire as wire
from agent.backends.netconf import NetconfBackend
from agent.backends.netconf_model import StepFailed
from agent.core import netlink_py as nl
from agent.network.plan import Step
from agent.backends.netns import call_in_netns
from tests.netns import ip


def _populate(ns: str) -> None:
    ip("link", "add", "a0", "type", "veth", "peer", "name", "a1", ns=ns)
    ip("link", "add", "br0", "type", "bridge", "stp_state", "1", ns=ns)
    ip("link", "set", "a1", "master", "br0", "mtu", "1400", ns=ns)
    ip("link", "add", "link", "a0", "name", "mv0", "type", "macvlan", "mode", "vepa", ns=ns)
    ip("link", "add", "vx5", "type", "vxlan", "id", "5", "local", "10.9.0.1", "remote", "10.9.0.2",
       "dstport", "4789", "nolearning", "dev", "a0", ns=ns)
    ip("link", "add", "vx6", "type", "vxlan", "id", "6", "group", "239.1.1.1", "dev", "a0", "dstport", "8472", ns=ns)
    for dev in ("a0", "a1", "br0"):
        ip("link", "set", dev, "up", ns=ns)
    # tests/netns.py turns IPv6 off in its namespaces; br0 gets it back (with its link-local address,
    # which the parser must leave out)
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=0"],
                   check=True, capture_output=True)
    ip("addr", "add", "10.9.0.1/24", "dev", "a0", ns=ns)
    ip("addr", "add", "2001:db8::1/64", "dev", "br0", "nodad", ns=ns)
    ip("route", "add", "10.50.0.0/16", "via", "10.9.0.254", "metric", "7", ns=ns)
    ip("route", "add", "10.51.0.0/16", "dev", "a0", "table", "100", ns=ns)
    ip("route", "add", "2001:db8:5::/48", "via", "2001:db8::fe", ns=ns)


def _pyroute2_view(ns: str) -> dict:
    """What pyroute2's decoder makes of the same namespace (the reference)."""
    def read():
        with IPRoute() as ipr:
            links = {}
            for m in ipr.get_links():
                info = m.get_attr("IFLA_LINKINFO")
                links[m.get_attr("IFLA_IFNAME")] = {
                    "index": m["index"], "mtu": m.get_attr("IFLA_MTU"), "mac": m.get_attr("IFLA_ADDRESS"),
                    "master": m.get_attr("IFLA_MASTER") or None, "up": bool(m["flags"] & 1),
                    "kind": info.get_attr("IFLA_INFO_KIND") if info else None}
            addrs = sorted((a["index"], a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                           for a in ipr.get_addr()
                           if not (a["family"] == socket.AF_INET6
                                   and (a.get_attr("IFA_ADDRESS") or "").startswith("fe80")))
            routes = sorted((r.get_attr("RTA_DST") or ("::" if fam == socket.AF_INET6 else "0.0.0.0"),
                             r["dst_len"], r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_PRIORITY") or 0,
                             r.get_attr("RTA_TABLE"))
                            for fam in (socket.AF_INET, socket.AF_INET6) for r in ipr.route("dump", family=fam)
                            if r["type"] == 1 and r["proto"] not in (2, 9) and r.get_attr("RTA_TABLE") != 255)
            return links, addrs, routes
    return call_in_netns(ns, read)


def test_the_dump_parser_agrees_with_pyroute2(netns):
    _populate(netns)
    links, addrs, routes = _pyroute2_view(netns)
    backend = NetconfBackend(netns)
    try:
        state = backend.read()
    finally:
        backend.close()
    by = state.by_name()
    assert set(by) == set(links)
    names = {v["index"]: k for k, v in links.items()}
    for name, ref in links.items():
        got = by[name]
        assert (got.index, got.mtu, got.mac, got.state == "up") == (ref["index"], ref["mtu"], ref["mac"], ref["up"])
        assert got.controller == (names[ref["master"]] if ref["master"] else None), name
    assert by["br0"].bridge.stp is True and [p.name for p in by["br0"].bridge.ports] == ["a1"]
    assert by["mv0"].macvlan.mode == "vepa" and by["mv0"].macvlan.base_iface == "a0"
    assert by["a0"].veth.peer == "a1" and by["a1"].veth.peer == "a0"
    vx5, vx6 = by["vx5"].vxlan, by["vx6"].vxlan
    assert (vx5.id, vx5.local, vx5.remote, vx5.group, vx5.destination_port, vx5.learning, vx5.base_iface) == (
        5, "10.9.0.1", "10.9.0.2", None, 4789, False, "a0")
    assert (vx6.id, vx6.remote, vx6.group, vx6.destination_port, vx6.learning) == (6, None, "239.1.1.1", 8472, True)
    got_addrs = sorted((i.index, a.ip, a.prefix_length) for i in state.interfaces for a in i.ipv4 + i.ipv6)
    assert got_addrs == addrs and (by["br0"].index, "2001:db8::1", 64) in got_addrs
    got_routes = sorted((r.destination.split("/")[0], int(r.destination.split("/")[1]), r.gateway, r.metric,
                         r.table) for r in state.routes)
    assert got_routes == routes
    assert any(r.destination == "10.50.0.0/16" and r.gateway == "10.9.0.254" and r.metric == 7 for r in state.routes)
    assert any(r.destination == "10.51.0.0/16" and r.table == 100 and r.next_hop_interface == "a0"
               for r in state.routes)


def test_errors_and_malformed_dumps_are_reported():
    ok = nl.pack_message(wire.RTM_NEWLINK, wire.IFINFOMSG.pack(0, 1, 7, 0, 0)
                         + nl.pack_attr(wire.IFLA_IFNAME, b"x0\0"), seq=1) + nl.pack_done(seq=1)
    assert [m["name"] for m in wire.parse_links(ok)] == ["x0"]
    assert wire.parse_link_names(ok) == {"x0": 7}
    with pytest.raises(nl.NetlinkError) as err:
        wire.parse_links(nl.pack_done(seq=1, error=-errno.EBUSY))
    assert err.value.errno == errno.EBUSY
    with pytest.raises(ValueError, match="offset"):
        wire.parse_links(ok[:-3])
    bad_attr = nl.pack_message(wire.RTM_NEWLINK, wire.IFINFOMSG.pack(0, 1, 7, 0, 0) + b"\x40\x00\x03\x00", seq=1)
    with pytest.raises(ValueError, match="nla_len"):
        wire.parse_links(bad_attr)
    # an acknowledgement: 0 is success; an error carries the kernel's extended-ack text
    assert wire.ack_error(nl.pack_error(0, seq=4), 4) is None
    ext = nl.pack_message(nl.NLMSG_ERROR, nl.ERRNO.pack(-errno.EINVAL) + nl.NLMSGHDR.pack(16, 16, 5, 5, 0)
                          + nl.pack_attr(wire.NLMSGERR_ATTR_MSG, b"Invalid MTU\0"),
                          flags=wire.NLM_F_CAPPED | wire.NLM_F_ACK_TLVS, seq=5)
    assert wire.ack_error(ext, 5) == (errno.EINVAL, "Invalid MTU")
    with pytest.raises(ValueError):
        wire.ack_error(nl.pack_error(0, seq=4), 9)


def test_a_plan_stops_at_the_first_step_the_kernel_refuses(netns):
    backend = NetconfBackend(netns)
    try:
        backend.read()
        add = lambda name: Step("link.set", name, f"ip link set {name} up", {"state": "up"})  # noqa: E731
        ip("link", "add", "ok0", "type", "veth", "peer", "name", "ok1", ns=netns)
        ip("link", "add", "late0", "type", "veth", "peer", "name", "late1", ns=netns)
        done = []
        with pytest.raises(StepFailed) as err:
            backend.execute_all([add("ok0"), add("missing0"), add("late0")],
                                lambda n, total, detail: done.append(n))
        assert err.value.index == 1 and isinstance(err.value.cause, OSError)
        assert err.value.cause.errno == errno.ENODEV
        assert done == [1]
        links = {l["ifname"]: l for l in json.loads(ip("-j", "link", "show", ns=netns))}
        assert "UP" in links["ok0"]["flags"] and "UP" not in links["late0"]["flags"]  # never sent
    finally:
        backend.close()


def test_an_unchanged_link_is_not_decoded_again_and_a_changed_one_is():
    def dump(mtu: int) -> bytes:
        body = (wire.IFINFOMSG.pack(0, 1, 7, 0, 0) + nl.pack_attr(wire.IFLA_IFNAME, b"x0\0")
                + nl.pack_attr(wire.IFLA_MTU, wire.U32.pack(mtu)))
        other = wire.IFINFOMSG.pack(0, 1, 8, 0, 0) + nl.pack_attr(wire.IFLA_IFNAME, b"y0\0")
        return (nl.pack_message(wire.RTM_NEWLINK, body, seq=3) + nl.pack_message(wire.RTM_NEWLINK, other, seq=3)
                + nl.pack_done(seq=3))
    first: dict = {}
    a = wire.parse_links(dump(1500), None, first)
    second: dict = {}
    b = wire.parse_links(dump(1400), first, second)
    assert b[1] is a[1]                                   # y0: the same message, the same decoded link
    assert b[0] is not a[0] and b[0]["mtu"] == 1400       # x0 changed: decoded afresh
    assert len(second) == 2 and a[0] not in second.values()   # only the latest dump's links are kept
