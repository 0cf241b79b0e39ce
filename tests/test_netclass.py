"""The netclass collector: its rows for one link, its sysfs attributes on the
``vm-net`` tree, and, on real interfaces in a namespace the test makes, every
value equal to what the kernel shows in that namespace's /sys/class/net.
Also node_network_carrier (served by netdev) on administratively down links."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.backends.links import Link
from agent.collectors.netclass import (DEVICE_ID, DORMANT, FLAGS, IFACE_LINK, NetclassCollector, SysfsAttrs,
                                       link_rows, read_sysfs_attrs)
from agent.collectors.netdev import NetdevCollector
from agent.telemetry.collector import CollectorContext
from agent.telemetry.model import Batch
from agent.telemetry.store import SeriesStore
from tests.helpers import batch_values
from tests.netns import ip

TREE = Path(__file__).parent / "fixtures" / "hosts" / "vm-net"
# metric -> /sys/class/net/<iface>/ attribute node_exporter reads it from
SYSFS = {"transmit_queue_length": "tx_queue_len", "flags": "flags", "protocol_type": "type",
         "iface_link": "iflink", "iface_link_mode": "link_mode", "net_dev_group": "netdev_group",
         "dormant": "dormant", "carrier_up_changes_total": "carrier_up_count",
         "carrier_down_changes_total": "carrier_down_count", "address_assign_type": "addr_assign_type",
         "device_id": "dev_id", "name_assign_type": "name_assign_type"}


def rows(link: Link, sysfs: SysfsAttrs | None = None) -> dict[str, int]:
    return {family.name.removeprefix("node_network_"): value for family, _, value in link_rows(link, "", sysfs)}


def test_link_rows_as_sysfs_shows_them():
    up = Link(7, "eth0", flags=0x11043, ifi_type=1, txqlen=1000, group=3, carrier_up_count=2,
              carrier_down_count=1)
    got = rows(up, SysfsAttrs(addr_assign_type=0, dev_id=1, name_assign_type=None))
    assert got == {"transmit_queue_length": 1000, "flags": 0x1003, "protocol_type": 1, "iface_link": 7,
                   "iface_link_mode": 0, "net_dev_group": 3, "dormant": 0, "address_assign_type": 0,
                   "device_id": 1, "carrier_up_changes_total": 2, "carrier_down_changes_total": 1}
    dormant = rows(Link(8, "wlan0", flags=0x21003, link_mode=1, iflink=3))
    assert (dormant["dormant"], dormant["flags"], dormant["iface_link_mode"], dormant["iface_link"]) \
        == (1, 0x1003, 1, 3)
    assert "carrier_up_changes_total" not in dormant  # kernels before 4.16
    assert "address_assign_type" not in dormant  # another namespace: no sysfs
    labels = {labels for _, labels, _ in link_rows(up, "ns1")}
    assert labels == {("eth0", "ns1")}
    assert {f for f, _, _ in link_rows(up, "")} >= {FLAGS, DORMANT, IFACE_LINK}
    assert DEVICE_ID not in {f for f, _, _ in link_rows(up, "")}  # no sysfs attributes given


def test_sysfs_attrs_only_for_the_same_interface():
    fs = HostFS(TREE)
    assert read_sysfs_attrs(fs, Link(4, "eth0")) == SysfsAttrs(addr_assign_type=0, dev_id=0, name_assign_type=1)
    assert read_sysfs_attrs(fs, Link(5, "eth0")) is None  # same name, another interface
    assert read_sysfs_attrs(fs, Link(4, "eth9")) is None
    assert read_sysfs_attrs(fs, Link(4, "../eth0")) is None


def sysfs_in(ns: str | None, iface: str, attr: str) -> int | None:
    """What node_exporter would read, in the namespace (``ip netns exec``
    mounts that namespace's sysfs); None where the kernel refuses."""
    cmd = ["cat", f"/sys/class/net/{iface}/{attr}"]
    out = subprocess.run(["ip", "netns", "exec", ns, *cmd] if ns else cmd, capture_output=True, text=True)
    if out.returncode:
        return None
    text = out.stdout.strip()
    return int(text, 16) if text.startswith("0x") else int(text)


def collect(collector) -> dict:
    batch = Batch()
    collector.collect(batch)
    SeriesStore(retention=60).ingest(collector.name, batch)  # the store takes the prepared layouts
    return batch_values(batch)


def wait_for(collector, want: dict, timeout: float = 2.0) -> dict:
    """Collect until every key of ``want`` reads its value: link notifications
    arrive on the watcher's thread, and the kernel's linkwatch batches carrier
    changes up to a second."""
    deadline = time.monotonic() + timeout
    while True:
        values = collect(collector)
        if all(values.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


@pytest.fixture
def veths(netns):
    """va (txqueuelen 500, group 7, link mode dormant, down) and vb (up) in
    one namespace; lo down."""
    ip("link", "add", "va", "type", "veth", "peer", "name", "vb", ns=netns)
    ip("link", "set", "va", "txqueuelen", "500", "group", "7", "mode", "dormant", ns=netns)
    ip("link", "set", "vb", "up", ns=netns)
    ip("link", "set", "lo", "down", ns=netns)
    return netns


@pytest.fixture
def netclass(veths):
    collector = NetclassCollector(CollectorContext(options={"namespaces": (veths,)}))
    yield collector
    collector.close()


@pytest.fixture
def netdev(veths):
    collector = NetdevCollector(CollectorContext(options={"namespaces": (veths,)}))
    yield collector
    collector.close()


@pytest.mark.netns
def test_every_value_equals_the_namespaces_sysfs(veths, netclass):
    ip("link", "set", "va", "up", ns=veths)
    deadline = time.monotonic() + 2.0  # until linkwatch has given both ends their carrier
    while sysfs_in(veths, "vb", "carrier") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    want, sysfs_only, einval = {}, [], []
    for iface in ("lo", "va", "vb"):
        for metric, attr in SYSFS.items():
            key = (f"node_network_{metric}", (iface, veths))
            if attr in ("addr_assign_type", "dev_id", "name_assign_type"):
                sysfs_only.append(key)  # served for the agent's own namespace only
                continue
            expected = sysfs_in(veths, iface, attr)
            if expected is None:  # the kernel refuses while the link is down: served as 0
                einval.append(key)
            want[key] = expected or 0
    assert einval == [("node_network_dormant", ("lo", veths))]
    values = wait_for(netclass, want)
    assert {k: values.get(k) for k in want} == want
    assert not set(sysfs_only) & set(values)
    assert want[("node_network_iface_link_mode", ("va", veths))] == 1  # operstate dormant, no dormant bit
    assert values[("node_network_transmit_queue_length", ("va", veths))] == 500
    assert values[("node_network_net_dev_group", ("va", veths))] == 7
    assert values[("node_network_iface_link", ("va", veths))] == sysfs_in(veths, "vb", "ifindex")
    assert values[("node_network_protocol_type", ("lo", veths))] == 772


@pytest.mark.netns
def test_a_changed_attribute_is_served_at_the_next_run(veths, netclass):
    key = ("node_network_transmit_queue_length", ("vb", veths))
    assert collect(netclass)[key] == 1000
    ip("link", "set", "vb", "txqueuelen", "4000", ns=veths)
    assert wait_for(netclass, {key: 4000})[key] == 4000
    ip("link", "del", "va", ns=veths)  # deletes vb too
    deadline = time.monotonic() + 2.0
    while key in collect(netclass) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {labels[0] for _, labels in collect(netclass)} == {"lo"}


@pytest.mark.netns
def test_carrier_is_zero_while_administratively_down(veths, netdev):
    carrier = lambda iface: ("node_network_carrier", (iface, veths))  # noqa: E731
    values = collect(netdev)
    # lo: IFLA_CARRIER stays 1 while down; va: down; vb: up, its peer down.
    assert (values[carrier("lo")], values[carrier("va")], values[carrier("vb")]) == (0, 0, 0)
    assert sysfs_in(veths, "lo", "carrier") is None  # the kernel refuses to say (EINVAL)
    ip("link", "set", "va", "up", ns=veths)
    ip("link", "set", "lo", "up", ns=veths)
    values = wait_for(netdev, {carrier("lo"): 1, carrier("va"): 1, carrier("vb"): 1})
    assert (values[carrier("lo")], values[carrier("va")], values[carrier("vb")]) == (1, 1, 1)
    ip("link", "set", "vb", "down", ns=veths)  # vb at once; va at the peer's next linkwatch run
    values = wait_for(netdev, {carrier("va"): 0, carrier("vb"): 0})
    assert (values[carrier("va")], values[carrier("vb")]) == (0, 0)


def test_host_namespace_values_equal_sysfs():
    collector = NetclassCollector(CollectorContext(hostfs=HostFS("/")))
    try:
        values = collect(collector)
    finally:
        collector.close()
    devices = {labels[0] for _, labels in values}
    assert "lo" in devices
    for iface in devices:
        for metric, attr in SYSFS.items():
            key = (f"node_network_{metric}", (iface, ""))
            expected = sysfs_in(None, iface, attr)
            if expected is None:
                assert values.get(key, 0) == 0, key  # absent (name_assign_type) or dormant while down
            else:
                assert values[key] == expected, key


def test_a_closed_collector_does_not_reopen():
    collector = NetclassCollector(CollectorContext())
    collect(collector)
    collector.close()
    with pytest.raises(RuntimeError):
        collector.collect(Batch())
