"""The real-kernel lane (scripts/realkernel.sh, docs/testing.md).

Marked ``realkernel``, run inside Debian's stock kernel under QEMU: the link
kinds this machine's kernel lacks, made through pyroute2 in a namespace of
the guest and read back with ``ip -j`` (what the network tests rely on), and
the guest's setup (the repository, its venv and built extensions; writes
land in memory, never on the host).  Unmarked, run on the host: the script
says why it cannot boot, and the host pass says where the marked tests run.
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import realkernel
from tests.netns import ip

REPO = Path(__file__).resolve().parent.parent
BOND_MODE_8023AD = 4
ETH_P_8021Q, ETH_P_8021AD = 0x8100, 0x88A8
BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4


def links(ns: str, *names: str) -> dict[str, dict]:
    """``ip -j -d link show`` of the namespace, by name (only ``names`` if given)."""
    found = {l["ifname"]: l for l in json.loads(ip("-j", "-d", "link", "show", ns=ns))}
    return {n: found[n] for n in names} if names else found


def add_link(ipr, ifname: str, kind: str, **attrs) -> int:
    """Create a link through pyroute2 and return its index; a kernel without
    the kind skips the test (fails with HOSTAGENT_REQUIRE_REALKERNEL=1)."""
    from pyroute2 import NetlinkError

    try:
        ipr.link("add", ifname=ifname, kind=kind, **attrs)
    except NetlinkError as exc:
        if exc.code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL) and kind not in ("veth", "dummy"):
            realkernel.require(f"{kind} links", f"creating {ifname}: {exc}")
        raise
    return ipr.link_lookup(ifname=ifname)[0]


def wait_for(check, timeout: float, what: str):
    """Poll ``check()`` until it returns something true (TCG is slow)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.5)


# -- inside the guest ------------------------------------------------------------
@pytest.mark.realkernel
def test_the_guest_runs_debians_kernel_over_this_repository(tmp_path):
    assert os.environ.get("HOSTAGENT_IN_GUEST") == "1"
    release = os.uname().release
    assert release.endswith("-amd64")
    assert "Debian" in Path("/proc/version").read_text()
    assert Path(f"/lib/modules/{release}/modules.dep").is_file()
    # The repository's venv runs this, and its built extensions load.
    assert Path(sys.prefix).resolve() == (REPO / ".venv").resolve()
    built = sorted((REPO / "agent" / "core").glob("_*.so"))
    assert built, "no built extension in agent/core (scripts/bootstrap.sh builds them)"
    for so in built:
        importlib.import_module(f"agent.core.{so.name.split('.')[0]}")
    # Writes land in guest memory: the shared root is read-only, tmp is not.
    with pytest.raises(OSError) as excinfo:
        (REPO / "realkernel-write-probe").write_text("x")
    assert excinfo.value.errno == errno.EROFS
    (tmp_path / "probe").write_text("x")
    assert REPO not in tmp_path.parents


@pytest.mark.realkernel
def test_bond_8023ad_of_two_veths_negotiates_lacp(netns, peer_netns):
    """Two veths into a second namespace acting as the switch, bonded with
    LACP on both ends: the ports join one aggregator and reach the partner."""
    from pyroute2 import NetNS

    with NetNS(netns) as host, NetNS(peer_netns) as switch:
        for ipr, ports in ((host, ("eth0", "eth1")), (switch, ("swp0", "swp1"))):
            bond = add_link(ipr, "bond0", "bond", bond_mode=BOND_MODE_8023AD,
                            bond_miimon=100, bond_ad_lacp_rate=1)
            if ipr is host:
                for mine, theirs in zip(ports, ("swp0", "swp1")):
                    add_link(host, mine, "veth", peer={"ifname": theirs, "net_ns_fd": peer_netns})
            for port in ports:
                ipr.link("set", index=ipr.link_lookup(ifname=port)[0], master=bond)
            ipr.link("set", index=bond, state="up")

    bond = links(netns, "bond0")["bond0"]["linkinfo"]
    assert bond["info_kind"] == "bond"
    assert bond["info_data"]["mode"] == "802.3ad"
    assert bond["info_data"]["miimon"] == 100
    assert bond["info_data"]["ad_lacp_rate"] == "fast"

    def negotiated():
        ports = links(netns, "eth0", "eth1")
        states = [p["linkinfo"]["info_slave_data"] for p in ports.values()]
        ok = all("distributing" in s.get("ad_actor_oper_port_state_str", []) for s in states)
        return ports if ok else None

    ports = wait_for(negotiated, 60, "LACP collecting/distributing on both ports")
    for port in ports.values():
        assert port["master"] == "bond0"
        assert port["linkinfo"]["info_kind"] == "veth"
        assert port["linkinfo"]["info_slave_kind"] == "bond"
    assert len({p["linkinfo"]["info_slave_data"]["ad_aggregator_id"] for p in ports.values()}) == 1
    ad_info = links(netns, "bond0")["bond0"]["linkinfo"]["info_data"]["ad_info"]
    assert ad_info["num_ports"] == 2
    switch_mac = links(peer_netns, "bond0")["bond0"]["address"]
    assert ad_info["partner_mac"] == switch_mac


@pytest.mark.realkernel
def test_dummy_with_8021q_and_8021ad_vlans(netns):
    from pyroute2 import NetNS

    with NetNS(netns) as ipr:
        dummy = add_link(ipr, "dummy0", "dummy")
        ipr.addr("add", index=dummy, address="192.0.2.1", prefixlen=24)
        ipr.link("set", index=dummy, state="up")
        vlan = add_link(ipr, "dummy0.100", "vlan", link=dummy, vlan_id=100,
                        vlan_protocol=ETH_P_8021Q)
        ipr.addr("add", index=vlan, address="198.51.100.1", prefixlen=24)
        ipr.link("set", index=vlan, state="up")
        outer = add_link(ipr, "dummy0.200", "vlan", link=dummy, vlan_id=200,
                         vlan_protocol=ETH_P_8021AD)
        # QinQ: a customer 802.1Q tag inside the provider's 802.1ad one.
        add_link(ipr, "dummy0.200.30", "vlan", link=outer, vlan_id=30,
                 vlan_protocol=ETH_P_8021Q)

    got = links(netns, "dummy0", "dummy0.100", "dummy0.200", "dummy0.200.30")
    assert got["dummy0"]["linkinfo"]["info_kind"] == "dummy"
    assert "UP" in got["dummy0"]["flags"]
    for name, base, vid, proto in (("dummy0.100", "dummy0", 100, "802.1Q"),
                                   ("dummy0.200", "dummy0", 200, "802.1ad"),
                                   ("dummy0.200.30", "dummy0.200", 30, "802.1Q")):
        info = got[name]["linkinfo"]
        assert info["info_kind"] == "vlan"
        assert info["info_data"]["id"] == vid
        assert info["info_data"]["protocol"] == proto
        assert got[name]["link"] == base
    assert "UP" in got["dummy0.100"]["flags"]
    addrs = {a["ifname"]: [(i["local"], i["prefixlen"]) for i in a["addr_info"]]
             for a in json.loads(ip("-j", "addr", "show", ns=netns))}
    assert addrs["dummy0"] == [("192.0.2.1", 24)]
    assert addrs["dummy0.100"] == [("198.51.100.1", 24)]


@pytest.mark.realkernel
def test_vlan_filtering_bridge_with_vlans_on_a_port(netns, peer_netns):
    from pyroute2 import NetNS

    with NetNS(netns) as ipr:
        bridge = add_link(ipr, "br0", "bridge", br_vlan_filtering=1)
        port = add_link(ipr, "veth0", "veth", peer={"ifname": "veth1", "net_ns_fd": peer_netns})
        ipr.link("set", index=port, master=bridge)
        ipr.link("set", index=port, state="up")
        ipr.link("set", index=bridge, state="up")
        # A trunk port: VLAN 10 tagged, VLAN 20 untagged as its PVID, no VLAN 1.
        ipr.vlan_filter("add", index=port, vlan_info={"vid": 10})
        ipr.vlan_filter("add", index=port, vlan_info={
            "vid": 20, "flags": BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED})
        ipr.vlan_filter("del", index=port, vlan_info={"vid": 1})

    got = links(netns, "br0", "veth0")
    assert got["br0"]["linkinfo"]["info_kind"] == "bridge"
    assert got["br0"]["linkinfo"]["info_data"]["vlan_filtering"] == 1
    assert got["veth0"]["master"] == "br0"
    assert got["veth0"]["linkinfo"]["info_slave_kind"] == "bridge"
    out = subprocess.run(["bridge", "-n", netns, "-j", "vlan", "show", "dev", "veth0"],
                         check=True, capture_output=True, text=True).stdout
    vlans = {v["vlan"]: sorted(v.get("flags", [])) for dev in json.loads(out) for v in dev["vlans"]}
    assert vlans == {10: [], 20: ["Egress Untagged", "PVID"]}


# -- on the host -----------------------------------------------------------------
def test_the_lane_says_why_it_cannot_boot():
    """A lane without its kernel skips with the reason on one line, or fails
    with it when HOSTAGENT_REQUIRE_REALKERNEL=1 (what CI sets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    env["HOSTAGENT_REALKERNEL_KERNEL"] = "/nonexistent/vmlinuz-0.0.0-amd64"
    script = str(REPO / "scripts" / "realkernel.sh")

    skipped = subprocess.run([script, "true"], env=env, capture_output=True, text=True, timeout=60)
    assert skipped.returncode == 0
    assert skipped.stdout == ""
    line, = skipped.stderr.splitlines()
    assert line.startswith("realkernel: SKIPPED, cannot boot the guest: ")

    failed = subprocess.run([script, "true"], env={**env, "HOSTAGENT_REQUIRE_REALKERNEL": "1"},
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    line, = failed.stderr.splitlines()
    assert line.startswith("realkernel: cannot boot the guest: ")
    assert line.endswith("(HOSTAGENT_REQUIRE_REALKERNEL is set)")
    if os.geteuid() == 0 and (REPO / ".venv" / "bin" / "vng").exists():
        assert "cannot read the kernel /nonexistent/vmlinuz-0.0.0-amd64" in line

    usage = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
    assert "usage: scripts/realkernel.sh CMD" in usage.stderr


def test_the_host_pass_deselects_realkernel_tests_and_says_where_they_run():
    env = {k: v for k, v in os.environ.items() if k != "HOSTAGENT_IN_GUEST"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         str(Path(__file__).relative_to(REPO))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_the_lane_says_why_it_cannot_boot" in run.stdout
    assert "test_bond_8023ad" not in run.stdout
    assert "4 deselected" in run.stdout
    assert "realkernel: 4 test(s) deselected here" in run.stdout
    assert realkernel.LANE in run.stdout
