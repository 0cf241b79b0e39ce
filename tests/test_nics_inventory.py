"""NIC inventory: physical-NIC fields from a fixture sysfs tree (PCI functions,
a virtio NIC, SR-IOV, a bridge port), the real thing inside a network
namespace this test creates, and the ETHTOOL_GDRVINFO ioctl."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.backends.ethtool import DRVINFO, ETHTOOL_GDRVINFO, DrvInfo, drvinfo, parse_drvinfo
from agent.backends.hostfs import HostFS
from agent.backends.links import VF, Link, call_in_netns
from agent.inventory.nics import Nic, collect_nics

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = HostFS(Path(__file__).parent / "fixtures" / "nics")
ICE = DrvInfo("ice", "1.11.14", "4.40 0x8001af0c 1.3429.0", "0000:3b:00.0")


def fake_drvinfo(answers: dict[str, DrvInfo]):
    def drvinfo(name: str) -> DrvInfo:
        if name not in answers:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return answers[name]
    return drvinfo


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)


# --- fixture sysfs -------------------------------------------------------------------

def test_fixture_tree_from_sysfs_alone():
    nics = {nic.name: nic for nic in collect_nics(FIXTURE, drvinfo=fake_drvinfo({"eth0": ICE}))}
    assert sorted(nics) == ["br0", "ens3", "eth0", "eth1", "tap0"]  # no lo
    assert nics["eth0"] == Nic(
        name="eth0", mac="b4:96:91:aa:00:00", kind="physical", pci_address="0000:3b:00.0", driver="ice",
        firmware_version="4.40 0x8001af0c 1.3429.0", speed_mbps=25000, mtu=9000, master="",
        vf_count=2, vf_macs=(), numa_node=1)
    assert nics["eth1"] == Nic(
        name="eth1", mac="b4:96:91:aa:00:01", kind="physical", pci_address="0000:3b:00.1", driver="ice",
        firmware_version="", speed_mbps=None, mtu=1500, master="br0", vf_count=0, numa_node=1)
    # virtio: the device is virtio2; the PCI function and its NUMA node are its parent's
    assert nics["ens3"] == Nic(
        name="ens3", mac="52:54:00:12:34:56", kind="physical", pci_address="0000:00:03.0",
        driver="virtio_net", speed_mbps=None, mtu=1500, numa_node=0)
    assert nics["br0"] == Nic(name="br0", mac="b4:96:91:aa:00:01", kind="bridge", mtu=1500)
    assert nics["tap0"].kind == "tap"


def test_fixture_tree_with_a_link_table():
    vfs = (VF(0, "02:00:00:00:00:0a"), VF(1, "02:00:00:00:00:0b"))
    links = {1: Link(1, "lo", kind="loopback"),
             4: Link(4, "eth0", kind="physical", mac="b4:96:91:aa:00:00", mtu=9000, vfs=vfs),
             9: Link(9, "br0", kind="bridge", mac="b4:96:91:aa:00:01", mtu=1500),
             5: Link(5, "eth1", kind="physical", mac="b4:96:91:aa:00:01", mtu=1500, master=9,
                     master_name="br0")}
    nics = collect_nics(FIXTURE, links, drvinfo=fake_drvinfo({"eth0": dataclasses.replace(ICE, fw_version="N/A")}))
    assert [nic.name for nic in nics] == ["br0", "eth0", "eth1"]  # the table's links, sorted
    eth0 = nics[1]
    assert (eth0.vf_count, eth0.vf_macs) == (2, ("02:00:00:00:00:0a", "02:00:00:00:00:0b"))
    assert (eth0.pci_address, eth0.driver, eth0.speed_mbps, eth0.firmware_version) == \
        ("0000:3b:00.0", "ice", 25000, "")  # "N/A" is no version
    assert nics[2].master == "br0"


def test_missing_sysfs_gives_empty_list(tmp_path):
    assert collect_nics(HostFS(tmp_path), drvinfo=fake_drvinfo({})) == []


# --- ethtool -----------------------------------------------------------------------

def test_parse_drvinfo():
    raw = DRVINFO.pack(ETHTOOL_GDRVINFO, b"mlx5_core", b"24.10-1.1.4", b"22.41.1000 (MT_0000000540)",
                       b"0000:3b:00.0", b"", b"", 0, 0, 0, 0, 0)
    assert parse_drvinfo(raw) == DrvInfo("mlx5_core", "24.10-1.1.4", "22.41.1000 (MT_0000000540)",
                                         "0000:3b:00.0")


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a\0b"])
def test_drvinfo_rejects_bad_names(name):
    with pytest.raises(OSError) as exc:
        drvinfo(name)
    assert exc.value.errno == errno.EINVAL


@pytest.mark.netns
def test_drvinfo_of_a_veth_in_a_namespace(netns):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    info = call_in_netns(netns, lambda: drvinfo("v0"))
    assert info.driver == "veth" and info.version and info.bus_info == ""
    with pytest.raises(OSError) as exc:
        call_in_netns(netns, lambda: drvinfo("nothere0"))
    assert exc.value.errno == errno.ENODEV


# --- the real thing, inside a namespace ---------------------------------------------

COLLECT_IN_NETNS = textwrap.dedent("""
    import dataclasses, json
    from agent.backends.hostfs import HostFS
    from agent.backends.links import LinkWatcher
    from agent.inventory.nics import collect_nics
    with LinkWatcher() as watcher:
        links = watcher.links()
    print(json.dumps({"sysfs": [dataclasses.asdict(n) for n in collect_nics(HostFS("/"))],
                      "links": [dataclasses.asdict(n) for n in collect_nics(HostFS("/"), links)]}))
""")


@pytest.mark.netns
def test_collect_nics_inside_a_namespace(netns):
    ip(netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip(netns, "link", "add", "br0", "type", "bridge")
    ip(netns, "link", "set", "v0", "master", "br0")
    ip(netns, "link", "set", "v1", "mtu", "9000")
    ip(netns, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789")
    ip(netns, "tuntap", "add", "dev", "tap0", "mode", "tap")
    ip(netns, "link", "add", "mv0", "link", "v1", "type", "macvlan", "mode", "bridge")
    # `ip netns exec` mounts a sysfs of the namespace: collect there as the agent would
    result = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", COLLECT_IN_NETNS],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            check=True, capture_output=True, text=True)
    both = json.loads(result.stdout)
    from_sysfs = {n["name"]: n for n in both["sysfs"]}
    from_links = {n["name"]: n for n in both["links"]}
    assert {name: n["kind"] for name, n in from_links.items()} == {
        "v0": "veth", "v1": "veth", "br0": "bridge", "vx0": "vxlan", "tap0": "tap", "mv0": "macvlan"}
    assert from_sysfs == from_links  # sysfs alone tells the same story
    assert from_links["v0"]["master"] == "br0" and from_links["v0"]["driver"] == "veth"
    assert from_links["v1"]["mtu"] == 9000
    assert all(n["pci_address"] == "" and n["speed_mbps"] is None and n["vf_count"] == 0
               for n in from_links.values())
    assert from_links["br0"]["firmware_version"] == ""  # the bridge says "N/A"
