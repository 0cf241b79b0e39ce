"""LinkWatcher against real kernel objects in network namespaces these tests
create (and always delete), plus the pure parts: FlapDetector, change_kinds,
parse_link and the sysfs enrichment over a fixture tree.  Nothing here
changes the host's own interfaces."""
from __future__ import annotations

import os
import queue
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from agent.backends.hostfs import HostFS
from agent.backends.links import (VF, FlapDetector, Link, LinkChange, LinkWatcher, change_kinds,
                                  parse_link, with_sysfs)

FIXTURE_SYS = Path(__file__).parent / "fixtures" / "nics" / "sys"


# --- helpers ------------------------------------------------------------------------

def ip(ns: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True, input=stdin)


def ip_batch(ns: str, lines: list[str]) -> None:
    ip(ns, "-batch", "-", stdin="\n".join(lines) + "\n")


def try_add(ns: str, *args: str) -> None:
    """``ip link add ...``, skipping the test when this kernel lacks the driver:
    a missing kernel feature, so a skip even with HOSTAGENT_REQUIRE_NETNS=1."""
    result = subprocess.run(["ip", "-n", ns, "link", "add", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this kernel cannot create `{' '.join(args)}`: {result.stderr.strip()}")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def by_name(watcher: LinkWatcher) -> dict[str, Link]:
    return {link.name: link for link in watcher.links().values()}


class Changes:
    """An on_change callback that tests can wait on."""

    def __init__(self) -> None:
        self.queue: queue.Queue[LinkChange] = queue.Queue()
        self.seen: list[LinkChange] = []

    def __call__(self, change: LinkChange) -> None:
        self.queue.put(change)

    def wait(self, kind: str, name: str, timeout: float = 1.0) -> LinkChange:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                change = self.queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(change)
            if change.kind == kind and change.link.name == name:
                return change
        pytest.fail(f"no {kind!r} for {name!r} within {timeout}s; saw "
                    f"{[(c.kind, c.link.name) for c in self.seen]}")

    def settle(self, quiet: float = 0.3) -> list[LinkChange]:
        """Everything that arrives until nothing has for ``quiet`` seconds."""
        while True:
            try:
                self.seen.append(self.queue.get(timeout=quiet))
            except queue.Empty:
                return self.seen


@pytest.fixture
def watch(netns):
    """``watch(**kwargs) -> (watcher, changes)``: a started watcher of ``netns``,
    closed before the namespace is deleted (an open one pins it)."""
    watchers: list[LinkWatcher] = []

    def start(**kwargs) -> tuple[LinkWatcher, Changes]:
        changes = Changes()
        watcher = LinkWatcher(netns, on_change=changes, **kwargs)
        watcher.start()
        watchers.append(watcher)
        return watcher, changes
    yield start
    for watcher in watchers:
        watcher.close()


# --- the table ----------------------------------------------------------------------

@pytest.mark.netns
def test_initial_table_kinds_masters_and_vni(netns, watch):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip(netns, "link", "add", "br0", "type", "bridge")
    ip(netns, "link", "set", "v0", "master", "br0")
    ip(netns, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789")
    ip(netns, "tuntap", "add", "dev", "tap0", "mode", "tap")
    ip(netns, "tuntap", "add", "dev", "tun0", "mode", "tun")
    ip(netns, "link", "add", "v2", "type", "veth", "peer", "name", "v3")
    ip(netns, "link", "add", "mv0", "link", "v2", "type", "macvlan", "mode", "bridge")
    ip(netns, "link", "set", "v2", "alias", "uplink to rack 7")
    watcher, _ = watch()
    links = by_name(watcher)
    assert {name: link.kind for name, link in links.items()} == {
        "lo": "loopback", "v0": "veth", "v1": "veth", "br0": "bridge", "vx0": "vxlan",
        "tap0": "tap", "tun0": "tun", "v2": "veth", "v3": "veth", "mv0": "macvlan"}
    assert (links["v0"].master, links["v0"].master_name) == (links["br0"].ifindex, "br0")
    assert (links["v1"].master, links["v1"].master_name) == (0, "")
    assert links["vx0"].vxlan_vni == 42 and links["v0"].vxlan_vni is None
    assert links["v2"].ifalias == "uplink to rack 7"
    assert all(k == link.ifindex for k, link in watcher.links().items())
    v0 = links["v0"]
    assert v0.mtu == 1500 and len(v0.mac) == 17 and v0.operstate == "down" and not v0.admin_up
    # another namespace's sysfs is not ours to read: no speed, duplex, driver
    assert (v0.speed_mbps, v0.duplex, v0.driver, v0.numa_node, v0.vfs) == (None, None, None, None, ())
    assert watcher.generation == 1


@pytest.mark.netns
@pytest.mark.parametrize("kind", ["bond", "dummy", "vlan"])
def test_kinds_this_kernel_may_lack(netns, watch, kind):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    if kind == "vlan":
        try_add(netns, "link", "v0", "name", "v0.5", "type", "vlan", "id", "5")
        name = "v0.5"
    else:
        try_add(netns, "x0", "type", kind)
        name = "x0"
    if kind == "bond":
        ip(netns, "link", "set", "v1", "master", "x0")
    links = by_name(watch()[0])
    assert links[name].kind == kind
    if kind == "vlan":
        assert links[name].vlan_id == 5
    if kind == "bond":
        assert links["v1"].master_name == "x0"


@pytest.mark.netns
def test_missing_namespace_is_not_created():
    name = f"hostagent-test-missing-{secrets.token_hex(4)}"
    with pytest.raises(FileNotFoundError):
        LinkWatcher(name).start()
    assert not os.path.exists(f"/run/netns/{name}")


# --- changes ------------------------------------------------------------------------

@pytest.mark.netns
def test_added_then_removed(netns, watch):
    watcher, changes = watch()
    generation = watcher.generation
    ip(netns, "link", "add", "a0", "type", "veth", "peer", "name", "a1")
    added = changes.wait("added", "a0")
    assert added.netns == netns and abs(added.time - time.time()) < 5
    assert "a0" in by_name(watcher) and watcher.generation > generation
    generation = watcher.generation
    ip(netns, "link", "del", "a0")
    removed = changes.wait("removed", "a0")
    changes.wait("removed", "a1")
    assert removed.link.ifindex == added.link.ifindex
    assert not {"a0", "a1"} & set(by_name(watcher)) and watcher.generation > generation


@pytest.mark.netns
def test_admin_down_and_peer_carrier(netns, watch):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip(netns, "link", "set", "v0", "up")
    ip(netns, "link", "set", "v1", "up")
    watcher, changes = watch()
    assert by_name(watcher)["v0"].carrier and by_name(watcher)["v0"].operstate == "up"

    ip(netns, "link", "set", "v0", "down")
    assert not changes.wait("down", "v0").link.admin_up
    lost = changes.wait("carrier_lost", "v1")
    assert lost.link.operstate == "lowerlayerdown" and not lost.link.carrier
    ip(netns, "link", "set", "v0", "up")
    changes.wait("up", "v0")
    changes.wait("carrier_regained", "v1")

    ip(netns, "link", "set", "v1", "down")  # the peer
    changes.wait("carrier_lost", "v0")
    ip(netns, "link", "set", "v1", "up")
    assert changes.wait("carrier_regained", "v0").link.carrier
    seen = changes.settle()
    assert not [c for c in seen if c.link.name == "v0" and c.kind == "carrier_lost"][1:], \
        "one carrier loss, one report"


@pytest.mark.netns
def test_quick_flaps_make_one_flapping_change(netns, watch):
    ip(netns, "link", "add", "f0", "type", "veth", "peer", "name", "f1")
    ip_batch(netns, ["link set f0 up", "link set f1 up"])
    watcher, changes = watch()
    ip_batch(netns, ["link set f1 down", "link set f1 up"] * 5)
    changes.wait("flapping", "f0")
    seen = changes.settle(0.5)
    assert [c.kind for c in seen if c.link.name == "f0"].count("flapping") == 1
    # still flapping: more flaps within the window are not reported again
    ip_batch(netns, ["link set f1 down", "link set f1 up"] * 3)
    assert [c.kind for c in changes.settle(0.5) if c.link.name == "f0"].count("flapping") == 1
    assert watcher.errors == 0


@pytest.mark.netns
def test_rename_and_nomaster(netns, watch):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip(netns, "link", "add", "br0", "type", "bridge")
    ip(netns, "link", "set", "v0", "master", "br0")
    watcher, changes = watch()
    ip(netns, "link", "set", "br0", "name", "br-ext")
    deadline = time.monotonic() + 1
    while by_name(watcher).get("v0", Link(0, "")).master_name != "br-ext" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert by_name(watcher)["v0"].master_name == "br-ext"
    # leaving a bridge sends an AF_BRIDGE RTM_DELLINK for the port: not a removal
    ip(netns, "link", "set", "v0", "nomaster")
    changes.settle()
    assert not [c for c in changes.seen if c.kind == "removed"]
    assert (by_name(watcher)["v0"].master, by_name(watcher)["v0"].master_name) == (0, "")


# --- lifecycle, churn, overflow ----------------------------------------------------

def _watcher_threads(ns: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"links-{ns}"]


@pytest.mark.netns
def test_close_stops_thread_and_leaves_no_fds(netns):
    before = fd_count()
    for _ in range(3):
        watcher = LinkWatcher(netns, on_change=lambda change: None)
        watcher.start()
        assert _watcher_threads(netns) and fd_count() == before + 2  # netlink socket, eventfd
        ip(netns, "link", "add", "c0", "type", "veth", "peer", "name", "c1")
        ip(netns, "link", "del", "c0")
        started = time.monotonic()
        watcher.close()
        assert time.monotonic() - started < 1.0
        assert not _watcher_threads(netns)
        assert fd_count() == before
    watcher.close()  # twice is harmless
    with pytest.raises(RuntimeError):
        watcher.start()


@pytest.mark.netns
def test_churn_300_pairs_returns_to_baseline(netns, watch):
    watcher, changes = watch()
    baseline = set(by_name(watcher))
    fds = fd_count()
    lines = []  # each pair is deleted 20 commands after it was created
    for i in range(320):
        lines += [f"link add c{i}a type veth peer name c{i}b"] if i < 300 else []
        lines += [f"link del c{i - 20}a"] if i >= 20 else []
    ip_batch(netns, lines)
    deadline = time.monotonic() + 10
    while set(by_name(watcher)) != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(by_name(watcher)) == baseline
    assert watcher.errors == 0 and _watcher_threads(netns) and fd_count() == fds
    seen = changes.settle()
    added = {c.link.name for c in seen if c.kind == "added"}
    removed = {c.link.name for c in seen if c.kind == "removed"}
    assert added == removed <= {f"c{i}{end}" for i in range(300) for end in "ab"}
    if not watcher.overflows:  # nothing lost: every link was seen to come and go
        assert len(added) == 600


@pytest.mark.netns
def test_overflow_redumps_and_publishes_the_difference(netns):
    class Stalled(Changes):
        """Holds the watcher's thread at the first change until the burst is
        in: its socket (the kernel's minimum buffer) overflows for sure, not
        only when the watcher happens to be slower than the kernel."""

        def __init__(self) -> None:
            super().__init__()
            self.gate = threading.Event()

        def __call__(self, change: LinkChange) -> None:
            self.gate.wait(10)
            super().__call__(change)

    changes = Stalled()
    watcher = LinkWatcher(netns, on_change=changes, rcvbuf=4096)
    watcher.start()
    try:
        names = {f"o{i}{end}" for i in range(200) for end in "ab"}
        ip_batch(netns, [f"link add o{i}a type veth peer name o{i}b" for i in range(200)])
        changes.gate.set()
        deadline = time.monotonic() + 10
        while not names <= set(by_name(watcher)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert names <= set(by_name(watcher))
        assert watcher.overflows >= 1 and watcher.errors == 0
        added = [c.link.name for c in changes.settle() if c.kind == "added"]
        assert sorted(added) == sorted(names), "each new link reported added exactly once"
    finally:
        changes.gate.set()
        watcher.close()


# --- the host's own table (read only) ----------------------------------------------

def test_host_table_reads_sysfs_for_physical_nics():
    with LinkWatcher() as watcher:
        links = by_name(watcher)
    assert links["lo"].kind == "loopback"
    for name, link in links.items():
        if os.path.exists(f"/sys/class/net/{name}/device"):
            assert link.kind == "physical"
            assert link.driver == os.path.basename(os.readlink(f"/sys/class/net/{name}/device/driver"))
            assert link.speed_mbps is None or link.speed_mbps > 0


def test_with_sysfs_over_a_fixture_tree():
    sysfs = HostFS(FIXTURE_SYS)
    eth0 = with_sysfs(Link(5, "eth0"), sysfs)
    assert (eth0.kind, eth0.speed_mbps, eth0.duplex, eth0.driver, eth0.bus_address, eth0.numa_node) == \
        ("physical", 25000, "full", "ice", "0000:3b:00.0", 1)
    eth1 = with_sysfs(Link(6, "eth1", bus_address="0000:3b:00.1"), sysfs)
    assert (eth1.speed_mbps, eth1.duplex) == (None, None)  # no link: speed -1, duplex unknown
    ens3 = with_sysfs(Link(7, "ens3", kind="physical"), sysfs)
    assert (ens3.driver, ens3.bus_address, ens3.numa_node) == ("virtio_net", "virtio2", None)
    bridge = Link(8, "br0", kind="bridge")
    assert with_sysfs(bridge, sysfs) is bridge


# --- pure parts ---------------------------------------------------------------------

def _decoded(attrs: list, index: int = 5, ifi_type: int = 1, flags: int = 0x1043) -> ifinfmsg:
    msg = ifinfmsg()
    msg.update(index=index, ifi_type=ifi_type, flags=flags, attrs=attrs)
    msg["header"]["type"] = 16  # RTM_NEWLINK
    msg.encode()
    return next(iter(MarshalRtnl().parse(bytes(msg.data))))


# One VF with every attribute parse_link reads, as pyroute2 encodes them
# (also tests/test_linkmsg.py's).
VF0_ATTRS = [("IFLA_VF_MAC", {"vf": 0, "mac": "02:00:00:00:00:0a"}),
             ("IFLA_VF_VLAN", {"vf": 0, "vlan": 100, "qos": 3}),
             ("IFLA_VF_LINK_STATE", {"vf": 0, "link_state": 1}),
             ("IFLA_VF_SPOOFCHK", {"vf": 0, "spoofchk": 1}),
             ("IFLA_VF_TRUST", {"vf": 0, "trust": 0}),
             ("IFLA_VF_STATS", {"attrs": [("IFLA_VF_STATS_RX_PACKETS", 10), ("IFLA_VF_STATS_TX_PACKETS", 20),
                                          ("IFLA_VF_STATS_RX_BYTES", 1000), ("IFLA_VF_STATS_TX_BYTES", 2000)]})]


def test_parse_link_physical_nic_with_vfs():
    vf0 = VF0_ATTRS
    vf1 = [("IFLA_VF_MAC", {"vf": 1, "mac": "02:00:00:00:00:0b"}),
           ("IFLA_VF_LINK_STATE", {"vf": 1, "link_state": 2})]
    msg = _decoded([
        ("IFLA_IFNAME", "ens1f0"), ("IFLA_MTU", 9000), ("IFLA_ADDRESS", "b4:96:91:00:00:01"),
        ("IFLA_OPERSTATE", "UP"), ("IFLA_CARRIER", 1), ("IFLA_CARRIER_CHANGES", 3), ("IFLA_MASTER", 9),
        ("IFLA_PARENT_DEV_NAME", "0000:3b:00.0"), ("IFLA_PARENT_DEV_BUS_NAME", "pci"), ("IFLA_NUM_VF", 2),
        ("IFLA_VFINFO_LIST", {"attrs": [("IFLA_VF_INFO", {"attrs": vf0}), ("IFLA_VF_INFO", {"attrs": vf1})]}),
    ])
    link = parse_link(msg, {9: Link(9, "bond0", kind="bond")})
    assert link == Link(
        ifindex=5, name="ens1f0", kind="physical", mac="b4:96:91:00:00:01", mtu=9000, operstate="up",
        admin_up=True, carrier=True, carrier_changes=3, master=9, master_name="bond0",
        bus_address="0000:3b:00.0", flags=0x1043, ifi_type=1, vfs=(
            VF(0, "02:00:00:00:00:0a", vlan=100, qos=3, link_state="enable", spoofchk=True, trust=False,
               rx_packets=10, tx_packets=20, rx_bytes=1000, tx_bytes=2000),
            VF(1, "02:00:00:00:00:0b", link_state="disable")))


def test_parse_link_kinds_from_linkinfo():
    def kind_of(info: dict, **kw) -> Link:
        return parse_link(_decoded([("IFLA_IFNAME", "x"), ("IFLA_LINKINFO", {"attrs": info})], **kw))
    tap = kind_of([("IFLA_INFO_KIND", "tun"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_TUN_TYPE", 2)]})])
    assert tap.kind == "tap"
    vlan = kind_of([("IFLA_INFO_KIND", "vlan"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_VLAN_ID", 7)]})])
    assert (vlan.kind, vlan.vlan_id) == ("vlan", 7)
    assert parse_link(_decoded([("IFLA_IFNAME", "lo")], ifi_type=772)).kind == "loopback"
    assert parse_link(_decoded([("IFLA_IFNAME", "x")])).kind == "virtual"
    assert parse_link(_decoded([("IFLA_IFNAME", "x")], flags=0)).admin_up is False


def test_change_kinds():
    up = Link(3, "v0", admin_up=True, carrier=True)
    assert change_kinds(None, up) == ["added"]
    assert change_kinds(up, None) == ["removed"]
    assert change_kinds(None, None) == []
    down = Link(3, "v0", admin_up=False, carrier=False)
    assert change_kinds(up, down) == ["down"]  # not also carrier_lost
    assert change_kinds(down, up) == ["up"]
    no_carrier = Link(3, "v0", admin_up=True, carrier=False)
    assert change_kinds(up, no_carrier) == ["carrier_lost"]
    assert change_kinds(no_carrier, up) == ["carrier_regained"]
    assert change_kinds(down, Link(3, "v0", carrier=True)) == []  # carrier while admin down
    assert change_kinds(up, Link(3, "v0-renamed", admin_up=True, carrier=True)) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_flap_detector_threshold_within_window():
    flaps = FlapDetector(threshold=4, window=60, clock=FakeClock())
    assert [flaps.observe(7, t) for t in (0, 10, 20)] == [False] * 3
    assert flaps.observe(7, 30) is True
    assert flaps.observe(7, 31) is False  # reported once
    assert flaps.observe(8, 31) is False  # per link


def test_flap_detector_spread_out_changes_never_flap():
    flaps = FlapDetector(threshold=4, window=60)
    assert not any(flaps.observe(1, t) for t in range(0, 1000, 21))


def test_flap_detector_reports_again_after_a_quiet_window():
    clock = FakeClock()
    flaps = FlapDetector(threshold=3, window=10, clock=clock)
    results = []
    for t in (0, 1, 2, 5, 14, 15):  # flapping from 2; never quiet for 10 s
        clock.now = t
        results.append(flaps.observe(1))
    assert results == [False, False, True, False, False, False]
    clock.now = 26  # quiet since 15: over
    assert [flaps.observe(1), flaps.observe(1, 27), flaps.observe(1, 28)] == [False, False, True]


def test_flap_detector_window_edges_and_forget():
    flaps = FlapDetector(threshold=2, window=5)
    assert [flaps.observe(1, 0), flaps.observe(1, 5)] == [False, True]  # within: inclusive
    assert [flaps.observe(2, 0), flaps.observe(2, 5.01)] == [False, False]
    flaps.forget(1)
    assert [flaps.observe(1, 6), flaps.observe(1, 7)] == [False, True]
    with pytest.raises(ValueError):
        FlapDetector(threshold=0)
