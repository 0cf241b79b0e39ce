"""The kinds this host's kernel lacks (bond, 802.1Q VLAN, dummy, VLAN-filtering
bridge), inside Debian's stock kernel (the `realkernel` lane:
scripts/realkernel.sh, docs/testing.md).

The issue's full topology: a bond of two veths whose peers sit in a second
namespace acting as the switch (its own bond, configured by a second engine),
a VLAN-filtering bridge with the bond as a trunk port, VLAN links on the
bridge, a VXLAN over VLAN 100 between the two namespaces, addresses and
routes; traffic through the VXLAN and through a route over VLAN 200; the
kernel shows exactly the config; a re-apply is silent; a failure half-way
and a rollback restore the namespace to its snapshot."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from agent.network import nmstate
from agent.network.engine import ApplyFailed
from tests.netns import ip, namespace
from tests.test_network_support import Monitor, dumps, make_engine, ping

pytestmark = pytest.mark.realkernel

HOST = """
interfaces:
- {name: a0, type: ethernet}
- {name: a1, type: ethernet}
- name: bond0
  type: bond
  link-aggregation:
    mode: 802.3ad
    port: [a0, a1]
    options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer2+3}
- name: br0
  type: linux-bridge
  bridge:
    options: {stp: {enabled: false}}
    port:
    - name: bond0
      vlan: {mode: trunk, trunk-tags: [{id: 100}, {id: 200}]}
- {name: br0.100, type: vlan, vlan: {base-iface: br0, id: 100},
   ipv4: {address: [{ip: 10.100.0.1, prefix-length: 24}]}}
- {name: br0.200, type: vlan, mtu: 1400, vlan: {base-iface: br0, id: 200},
   ipv4: {address: [{ip: 10.200.0.1, prefix-length: 24}]}}
- name: vx42
  type: vxlan
  vxlan: {id: 42, local: 10.100.0.1, remote: 10.100.0.2, destination-port: 4789}
  ipv4: {address: [{ip: 192.168.42.1, prefix-length: 24}]}
routes:
  config:
  - {destination: 10.250.0.0/16, next-hop-address: 10.200.0.2, metric: 50}
"""
SWITCH = """
interfaces:
- {name: s0, type: ethernet}
- {name: s1, type: ethernet}
- name: sbond0
  type: bond
  link-aggregation:
    mode: 802.3ad
    port: [s0, s1]
    options: {miimon: 100, lacp_rate: fast}
- {name: sbond0.100, type: vlan, vlan: {base-iface: sbond0, id: 100},
   ipv4: {address: [{ip: 10.100.0.2, prefix-length: 24}]}}
- {name: sbond0.200, type: vlan, vlan: {base-iface: sbond0, id: 200, protocol: 802.1q},
   ipv4: {address: [{ip: 10.200.0.2, prefix-length: 24}]}}
- {name: stub0, type: dummy, ipv4: {address: [{ip: 10.250.0.1, prefix-length: 16}]}}
- name: vx42
  type: vxlan
  vxlan: {id: 42, local: 10.100.0.2, remote: 10.100.0.1}
  ipv4: {address: [{ip: 192.168.42.2, prefix-length: 24}]}
"""


@pytest.fixture(scope="module", autouse=True)
def kinds_available():
    """Outside the lane (a kernel without them) these tests skip with the reason."""
    with namespace("hostagent-probe") as ns:
        for kind in ("dummy", "bond"):
            try:
                ip("link", "add", f"probe-{kind}", "type", kind, ns=ns)
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"this kernel has no {kind} links ({exc.stderr.strip()}); "
                            "run in the realkernel lane: scripts/realkernel.sh")


@pytest.fixture
def site(netns, peer_netns, tmp_path):
    """a0/a1 here wired to s0/s1 in the switch namespace; both configured."""
    for mine, theirs in (("a0", "s0"), ("a1", "s1")):
        ip("link", "add", mine, "type", "veth", "peer", "name", theirs, "netns", peer_netns, ns=netns)
    host, switch = make_engine(netns, tmp_path / "host"), make_engine(peer_netns, tmp_path / "switch")
    switch.apply(nmstate.parse_document(SWITCH))
    yield host
    host.backend.close()
    switch.backend.close()


def _bridge_vlans(ns: str) -> dict[str, list]:
    out = json.loads(subprocess.run(["bridge", "-n", ns, "-j", "vlan", "show"], capture_output=True, text=True,
                                    check=True).stdout or "[]")
    return {e["ifname"]: sorted((v["vlan"], tuple(sorted(v.get("flags", [])))) for v in e["vlans"]) for e in out}


def _ping(ns: str, address: str, seconds: float = 20) -> bool:
    """LACP needs a few exchanges (fast rate: one a second) before the bond carries traffic."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ping(ns, address):
            return True
    return False


def test_full_topology_is_exact_carries_traffic_and_reapplies_silently(netns, peer_netns, site):
    desired = nmstate.parse_document(HOST)
    result = site.apply(desired)
    assert result.changed
    links = {l["ifname"]: l for l in json.loads(ip("-j", "-d", "link", "show", ns=netns))}
    assert links["bond0"]["linkinfo"]["info_kind"] == "bond"
    bond = links["bond0"]["linkinfo"]["info_data"]
    assert (bond["mode"], bond["miimon"], bond["ad_lacp_rate"], bond["xmit_hash_policy"]) == (
        "802.3ad", 100, "fast", "layer2+3")
    assert links["a0"]["master"] == links["a1"]["master"] == "bond0"
    assert links["bond0"]["master"] == "br0"
    assert links["br0"]["linkinfo"]["info_data"]["vlan_filtering"] == 1
    assert links["br0"]["linkinfo"]["info_data"]["stp_state"] == 0
    assert links["br0.100"]["linkinfo"]["info_data"]["id"] == 100
    assert links["br0.200"]["mtu"] == 1400
    assert links["vx42"]["linkinfo"]["info_data"]["id"] == 42
    vlans = _bridge_vlans(netns)
    assert vlans["bond0"] == [(100, ()), (200, ())]          # trunk only: the default PVID 1 is gone
    assert (100, ()) in vlans["br0"] and (200, ()) in vlans["br0"]   # the VLAN links' VIDs on the bridge
    assert any(r.get("dst") == "10.250.0.0/16" and r.get("gateway") == "10.200.0.2" and r.get("metric") == 50
               for r in json.loads(ip("-j", "route", "show", ns=netns)))
    assert _ping(netns, "10.100.0.2")        # VLAN 100 over the bridge and the bond
    assert _ping(netns, "192.168.42.2")      # through the VXLAN
    assert _ping(netns, "10.250.0.1")        # the route over VLAN 200
    # `show` output reads back as a config the kernel already matches
    assert site.plan(nmstate.parse_document(nmstate.to_text(site.live()))).empty
    before = dumps(netns)
    monitor = Monitor(netns)
    again = site.apply(desired)
    assert not again.changed and monitor.stop_after_marker() == []
    assert dumps(netns) == before


def test_a_failure_half_way_a_rollback_and_a_change_are_exact(netns, site, tmp_path):
    before = dumps(netns)
    total = len(site.plan(nmstate.parse_document(HOST)))

    def hook(index, step):
        if index == total - 3:
            raise RuntimeError("injected")
    failing = make_engine(netns, tmp_path / "failing", step_hook=hook)
    try:
        with pytest.raises(ApplyFailed, match="rolled back"):
            failing.apply(nmstate.parse_document(HOST))
    finally:
        failing.backend.close()
    assert dumps(netns) == before
    site.apply(nmstate.parse_document(HOST))
    site.rollback()
    assert dumps(netns) == before

    # a change to the live topology: bond mode (re-created, ports enslaved
    # again), a trunk VID swapped, a VLAN link and the route through it gone
    site.apply(nmstate.parse_document(HOST))
    changed = (HOST.replace("[{id: 100}, {id: 200}]", "[{id: 100}, {id: 300}]")
                   .replace("mode: 802.3ad\n    port: [a0, a1]", "mode: active-backup\n    port: [a0, a1]")
                   .replace("options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer2+3}",
                            "options: {miimon: 100}")
                   .replace("- {name: br0.200, type: vlan, mtu: 1400,", "- {name: br0.200, type: vlan, state: absent,"))
    changed = changed[:changed.index("routes:")]
    text = [s.detail for s in site.plan(nmstate.parse_document(changed)).steps]
    assert text.index("ip link del bond0") < text.index("ip link add bond0 type bond mode active-backup miimon 100")
    assert "ip link del br0.200" in text and "ip link set a0 master bond0" in text
    site.apply(nmstate.parse_document(changed))
    assert _bridge_vlans(netns)["bond0"] == [(100, ()), (300, ())]
    links = {l["ifname"]: l for l in json.loads(ip("-j", "-d", "link", "show", ns=netns))}
    assert links["bond0"]["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert "br0.200" not in links and links["a0"]["master"] == "bond0" and links["bond0"]["master"] == "br0"
    assert site.plan(nmstate.parse_document(changed)).empty
