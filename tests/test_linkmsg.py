"""The link watcher's own decoder (agent.backends.linkmsg) against pyroute2's,
on the kernel's own link dumps and on messages pyroute2 encodes, and that the
telemetry path no longer loads pyroute2 (10 MB of every agent's memory)."""
from __future__ import annotations

import errno
import socket
import subprocess
import sys
import time

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from agent.backends import linkmsg
from agent.backends.links import Link, call_in_netns, parse_link
from agent.core import netlink_py as wire
from tests.test_links import VF0_ATTRS

NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300


def both(data: bytes) -> list[tuple[Link, Link]]:
    """parse_link of every link message in ``data``, by pyroute2 and by linkmsg."""
    theirs = [parse_link(m) for m in MarshalRtnl().parse(data) if m["header"]["type"] in (16, 17)]
    ours = [parse_link(m.link) for m in linkmsg.parse(data) if m.link is not None]
    return list(zip(theirs, ours, strict=True))


def encoded(attrs: list, index: int = 5, ifi_type: int = 1, flags: int = 0x1043) -> bytes:
    msg = ifinfmsg()
    msg.update(index=index, ifi_type=ifi_type, flags=flags, attrs=attrs)
    msg["header"]["type"] = 16  # RTM_NEWLINK
    msg.encode()
    return bytes(msg.data)


def dump(ns: str) -> bytes:
    """The raw datagrams of an RTM_GETLINK dump (with VFs) of ``ns``."""
    def make() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock = call_in_netns(ns, make)
    try:
        sock.settimeout(5)
        sock.bind((0, 0))
        sock.send(linkmsg.getlink_request(7, NLM_F_REQUEST | NLM_F_DUMP, ext_mask=1))
        out = b""
        while True:
            chunk = sock.recv(1 << 18)
            out += chunk
            if wire.last_message_type(chunk, 0, len(chunk)) == wire.NLMSG_DONE:
                return out
    finally:
        sock.close()


@pytest.mark.netns
def test_every_link_of_a_real_dump_decodes_as_pyroute2_does(netns):
    def ip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True)
    assert ip("link", "add", "br0", "type", "bridge").returncode == 0
    assert ip("link", "add", "v0", "mtu", "9000", "type", "veth", "peer", "name", "v1").returncode == 0
    assert ip("link", "set", "v0", "master", "br0", "up").returncode == 0
    assert ip("link", "set", "v1", "alias", "uplink of tenant 7").returncode == 0
    optional = [("vx0", "vxlan", "id", "4242", "dstport", "4789", "dev", "v1"),
                ("mv0", "link", "v1", "type", "macvlan", "mode", "bridge"),
                ("tap0", "tuntap", "mode", "tap")]
    for name, *rest in optional:  # a kernel without one of these still checks the others
        if rest[0] == "tuntap":
            ip("tuntap", "add", "dev", name, "mode", "tap")
        elif rest[0] == "link":
            ip("link", "add", "link", rest[1], "name", name, "type", *rest[3:])
        else:
            ip("link", "add", name, "type", *rest)
    pairs = both(dump(netns))
    names = {ours.name for _, ours in pairs}
    assert {"lo", "br0", "v0", "v1"} <= names
    for theirs, ours in pairs:
        assert ours == theirs
    by_name = {ours.name: ours for _, ours in pairs}
    assert by_name["lo"].kind == "loopback" and by_name["v0"].mtu == 9000
    assert by_name["v0"].master_name == "" and by_name["v0"].master == by_name["br0"].ifindex
    assert by_name["v1"].ifalias == "uplink of tenant 7" and by_name["v1"].kind == "veth"
    if "vx0" in by_name:
        assert by_name["vx0"].vxlan_vni == 4242
    if "tap0" in by_name:
        assert by_name["tap0"].kind == "tap"


def test_a_physical_nic_with_vfs_decodes_as_pyroute2_does():
    vf0 = VF0_ATTRS
    vf1 = [("IFLA_VF_MAC", {"vf": 1, "mac": "02:00:00:00:00:0b"}),
           ("IFLA_VF_SPOOFCHK", {"vf": 1, "spoofchk": 0xFFFFFFFF}),  # not supported by the driver
           ("IFLA_VF_LINK_STATE", {"vf": 1, "link_state": 2})]
    data = encoded([
        ("IFLA_IFNAME", "ens1f0"), ("IFLA_MTU", 9000), ("IFLA_ADDRESS", "b4:96:91:00:00:01"),
        ("IFLA_OPERSTATE", "LOWERLAYERDOWN"), ("IFLA_CARRIER", 0), ("IFLA_CARRIER_CHANGES", 3),
        ("IFLA_CARRIER_UP_COUNT", 2), ("IFLA_CARRIER_DOWN_COUNT", 1), ("IFLA_MASTER", 9),
        ("IFLA_TXQLEN", 1000), ("IFLA_GROUP", 4), ("IFLA_LINKMODE", 1), ("IFLA_LINK", 3),
        ("IFLA_PARENT_DEV_NAME", "0000:3b:00.0"), ("IFLA_PARENT_DEV_BUS_NAME", "pci"), ("IFLA_NUM_VF", 2),
        ("IFLA_VFINFO_LIST", {"attrs": [("IFLA_VF_INFO", {"attrs": vf0}), ("IFLA_VF_INFO", {"attrs": vf1})]}),
    ])
    [(theirs, ours)] = both(data)
    assert ours == theirs
    assert ours.kind == "physical" and ours.operstate == "lowerlayerdown" and ours.group == 4
    assert [vf.mac for vf in ours.vfs] == ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
    assert ours.vfs[0].rx_bytes == 1000 and ours.vfs[1].spoofchk is None
    assert next(linkmsg.parse(data)).link.get_attr("IFLA_NUM_VF") == 2


@pytest.mark.parametrize("info", [
    [("IFLA_INFO_KIND", "tun"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_TUN_TYPE", 2)]})],
    [("IFLA_INFO_KIND", "tun"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_TUN_TYPE", 1)]})],
    [("IFLA_INFO_KIND", "vlan"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_VLAN_ID", 4094)]})],
    [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_VXLAN_ID", 16777215)]})],
    [("IFLA_INFO_KIND", "bond")],
])
def test_kinds_from_linkinfo_decode_as_pyroute2_does(info):
    [(theirs, ours)] = both(encoded([("IFLA_IFNAME", "x"), ("IFLA_LINKINFO", {"attrs": info})]))
    assert ours == theirs and ours.kind != "virtual"


def test_errors_acks_and_other_messages():
    data = (wire.pack_error(-errno.EBUSY, seq=4, pid=9) + wire.pack_error(0, seq=5)
            + wire.pack_done(seq=4, pid=9) + encoded([("IFLA_IFNAME", "x")], index=3))
    msgs = list(linkmsg.parse(data))
    assert [(m.type, m.seq, m.error) for m in msgs[:3]] == [(2, 4, errno.EBUSY), (2, 5, 0), (3, 4, 0)]
    assert msgs[3].link["index"] == 3 and msgs[3].link.get_attr("IFLA_IFNAME") == "x"


def test_a_cut_or_lying_message_raises_value_error():
    good = encoded([("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1500)])
    lying_nla = bytearray(good)
    lying_nla[wire.NLMSGHDR.size + linkmsg.IFINFOMSG.size] = 0xFF  # runs past its message
    lying_len = bytearray(good)
    lying_len[0:4] = (len(good) + 4).to_bytes(4, sys.byteorder)  # runs past the datagram
    for data in (good[:10], good + good[:10], bytes(lying_nla), bytes(lying_len)):
        with pytest.raises(ValueError):
            list(linkmsg.parse(data))


def test_the_link_watcher_and_the_collectors_do_not_load_pyroute2():
    code = ("import sys, agent.daemon, agent.backends.links, agent.collectors.netdev, "
            "agent.collectors.netclass; w = agent.backends.links.LinkWatcher(); w.start(); w.close(); "
            "print(sorted(m for m in sys.modules if m.startswith('pyroute2'))[:3])")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"pyroute2 loaded ({time.monotonic() - t0:.1f}s): {out.stdout}"
