"""Applying configs to a real kernel, in namespaces the tests create: a
topology of veths, a bridge, a macvlan and a VXLAN between two namespaces
with traffic through it; nmstate YAML and the model give the same kernel
state; a re-apply changes nothing (netlink stays silent); the managed set
persists; protected interfaces; confirmation and rollback."""
from __future__ import annotations

import threading

import pytest

from agent.errors import FailedPrecondition
from agent.network import nmstate
from agent.network.model import Address, Bridge, BridgePort, Interface, Macvlan, NetworkState, Route, Veth, Vxlan
from tests.netns import ip
from tests.test_network_support import Monitor, brief, dumps, make_engine, ping

SITE_A = """
interfaces:
- {name: u0, type: ethernet, ipv4: {address: [{ip: 10.200.0.1, prefix-length: 30}]}}
- {name: v0, type: veth, mtu: 1400, veth: {peer: v1}, ipv4: {address: [{ip: 172.16.5.1, prefix-length: 24}]}}
- {name: v1, type: veth, veth: {peer: v0}}
- name: vx100
  type: vxlan
  mtu: 1450
  vxlan: {id: 100, local: 10.200.0.1, remote: 10.200.0.2, base-iface: u0, destination-port: 4789}
- name: br0
  type: linux-bridge
  bridge: {options: {stp: {enabled: false}}, port: [{name: vx100}, {name: v1}]}
  ipv4: {address: [{ip: 192.168.50.1, prefix-length: 24}]}
- {name: mv0, type: mac-vlan, mac-vlan: {base-iface: v0, mode: bridge}, state: down}
routes:
  config:
  - {destination: 10.77.0.0/16, next-hop-address: 192.168.50.2, metric: 20}
  - {destination: 10.78.0.0/16, next-hop-interface: v0, table-id: 100}
"""
SITE_B = """
interfaces:
- {name: u1, type: ethernet, ipv4: {address: [{ip: 10.200.0.2, prefix-length: 30}]}}
- name: vx100
  type: vxlan
  vxlan: {id: 100, local: 10.200.0.2, remote: 10.200.0.1, destination-port: 4789}
  ipv4: {address: [{ip: 192.168.50.2, prefix-length: 24}, {ip: 10.77.0.1, prefix-length: 16}]}
"""


def _underlay(ns: str, peer: str) -> None:
    """The "physical" NICs: u0 here wired to u1 in the peer namespace."""
    ip("link", "add", "u0", "type", "veth", "peer", "name", "u1", "netns", peer, ns=ns)


@pytest.fixture
def engine(netns, tmp_path):
    e = make_engine(netns, tmp_path / "state")
    yield e
    e.backend.close()


def test_topology_applies_exactly_and_carries_traffic_through_the_vxlan(netns, peer_netns, tmp_path, engine):
    _underlay(netns, peer_netns)
    result = engine.apply(nmstate.parse_document(SITE_A))
    assert result.changed and not result.rolled_back
    far = make_engine(peer_netns, tmp_path / "far")
    try:
        far.apply(nmstate.parse_document(SITE_B))
    finally:
        far.backend.close()
    got = brief(netns)
    assert got["links"]["br0"][:4] == ("bridge", None, 1450, True)   # a bridge takes its ports' least MTU
    assert got["links"]["br0"][5] == ["192.168.50.1/24"]
    assert got["links"]["vx100"][:4] == ("vxlan", "br0", 1450, True)
    assert {k: got["links"]["vx100"][4][k] for k in ("id", "remote", "local", "port")} == {
        "id": 100, "remote": "10.200.0.2", "local": "10.200.0.1", "port": 4789}
    assert got["links"]["v0"] == ("veth", None, 1400, True, {}, ["172.16.5.1/24"])
    assert got["links"]["v1"][:4] == ("veth", "br0", 1500, True)
    assert got["links"]["mv0"][:4] == ("macvlan", None, 1400, False)
    assert got["links"]["u0"][5] == ["10.200.0.1/30"]
    assert ("10.77.0.0/16", "192.168.50.2", "br0", 20, "main", "static") in got["routes"]
    assert ("10.78.0.0/16", None, "v0", 0, "100", "static") in got["routes"]
    assert ping(netns, "192.168.50.2")      # across the VXLAN
    assert ping(netns, "10.77.0.1")         # routed over it by the configured route
    assert engine.managed() == frozenset({"u0", "v0", "v1", "vx100", "br0", "mv0"})
    # what `show` prints (lo, the underlay whose peer is elsewhere, all of it)
    # reads back as a config the kernel already matches
    shown = nmstate.to_text(engine.live(), engine.managed())
    assert "type: loopback" in shown and "hostagent:" in shown
    assert engine.plan(nmstate.parse_document(shown)).empty


def _model() -> NetworkState:
    """SITE_A without the underlay, built in Python instead of YAML."""
    return NetworkState(interfaces=(
        Interface("v0", "veth", mtu=1400, veth=Veth("v1"), ipv4=(Address("172.16.5.1", 24),), ipv6_managed=False),
        Interface("v1", "veth", veth=Veth("v0"), controller="br0", ipv4_managed=False, ipv6_managed=False),
        Interface("vx100", "vxlan", mtu=1450, vxlan=Vxlan(id=100, local="172.16.5.1", remote="172.16.5.2"),
                  controller="br0", ipv4_managed=False, ipv6_managed=False),
        Interface("br0", "bridge", bridge=Bridge(stp=False, ports=(BridgePort("vx100"), BridgePort("v1"))),
                  ipv4=(Address("192.168.50.1", 24),), ipv6_managed=False),
        Interface("mv0", "macvlan", state="down", macvlan=Macvlan("v0", "bridge"), ipv4_managed=False,
                  ipv6_managed=False),
    ), routes=(Route("10.77.0.0/16", "192.168.50.2", metric=20), Route("10.78.0.0/16", None, "v0", table=100)))


MODEL_AS_YAML = """
interfaces:
- {name: v0, type: veth, mtu: 1400, veth: {peer: v1}, ipv4: {address: [{ip: 172.16.5.1, prefix-length: 24}]}}
- {name: v1, type: veth, veth: {peer: v0}}
- {name: vx100, type: vxlan, mtu: 1450, vxlan: {id: 100, local: 172.16.5.1, remote: 172.16.5.2}}
- name: br0
  type: linux-bridge
  bridge: {options: {stp: {enabled: false}}, port: [{name: vx100}, {name: v1}]}
  ipv4: {address: [{ip: 192.168.50.1, prefix-length: 24}]}
- {name: mv0, type: mac-vlan, mac-vlan: {base-iface: v0, mode: bridge}, state: down}
routes:
  config:
  - {destination: 10.77.0.0/16, next-hop-address: 192.168.50.2, metric: 20}
  - {destination: 10.78.0.0/16, next-hop-interface: v0, table-id: 100}
"""


def test_nmstate_yaml_gives_the_same_kernel_state_as_the_model(netns, peer_netns, tmp_path):
    assert nmstate.parse_document(MODEL_AS_YAML) == _model()
    a, b = make_engine(netns, tmp_path / "a"), make_engine(peer_netns, tmp_path / "b")
    try:
        a.apply(_model())
        b.apply(nmstate.parse_document(MODEL_AS_YAML))
    finally:
        a.backend.close()
        b.backend.close()
    assert brief(netns) == brief(peer_netns)
    assert "br0" in brief(netns)["links"]


def test_reapply_plans_nothing_and_the_kernel_hears_nothing(netns, peer_netns, engine):
    _underlay(netns, peer_netns)
    desired = nmstate.parse_document(SITE_A)
    engine.apply(desired)
    before = dumps(netns)
    assert engine.plan(desired).empty
    monitor = Monitor(netns)
    result = engine.apply(desired)
    events = monitor.stop_after_marker()
    assert not result.changed and result.plan.empty
    assert events == []                 # no link bounced, no address or route re-added
    assert dumps(netns) == before


def test_dropped_and_absent_interfaces_are_removed_and_the_managed_set_persists(netns, tmp_path, engine):
    ip("link", "add", "theirs", "type", "veth", "peer", "name", "theirs-p", ns=netns)
    engine.apply(nmstate.parse_document(MODEL_AS_YAML))
    # a new engine (an agent restart) knows what the last one managed
    again = make_engine(netns, tmp_path / "state")
    try:
        assert again.managed() == frozenset({"v0", "v1", "vx100", "br0", "mv0"})
        result = again.apply(nmstate.parse_document(
            "interfaces: [{name: br0, type: linux-bridge, bridge: {port: []}},"
            " {name: v0, type: veth, veth: {peer: v1}, state: absent}]"))
    finally:
        again.backend.close()
    names = set(brief(netns)["links"])
    assert names == {"lo", "br0", "theirs", "theirs-p"}   # vx100, mv0 dropped; v0/v1 absent; theirs untouched
    assert "ip link del vx100" in [s.detail for s in result.plan.steps]
    # the managed routes went with the config; br0 kept its address (no ipv4 section: left alone)
    assert brief(netns)["routes"] == [("192.168.50.0/24", None, "br0", 0, "main", "kernel")]


def test_a_protected_interface_is_not_removed_or_taken_down_without_force(netns, engine):
    engine.apply(nmstate.parse_document(MODEL_AS_YAML))
    before = dumps(netns)
    drop = nmstate.parse_document("interfaces: [{name: br0, type: linux-bridge, state: down, bridge: {port: []}}]")
    with pytest.raises(FailedPrecondition, match="interface br0 is protected"):
        engine.apply(drop, protected=frozenset({"br0"}))
    with pytest.raises(FailedPrecondition, match="interface v1 is protected"):
        engine.apply(drop, protected=frozenset({"v1"}))        # removed with the config's vanished v0
    with pytest.raises(FailedPrecondition, match="address 172.16.5.1 on v0 is protected"):
        engine.apply(nmstate.parse_document(MODEL_AS_YAML.replace("172.16.5.1, prefix", "172.16.5.9, prefix")),
                     protected=frozenset({"172.16.5.1"}))
    marked = MODEL_AS_YAML.replace("{name: mv0, type: mac-vlan,", "{name: mv0, type: mac-vlan, protected: true,")
    engine.apply(nmstate.parse_document(marked))
    with pytest.raises(FailedPrecondition, match="interface mv0 is protected"):
        engine.apply(nmstate.parse_document(marked.replace("state: down}", "state: absent}")))
    assert dumps(netns) == before
    engine.apply(drop, protected=frozenset({"br0"}), force=True)
    assert brief(netns)["links"]["br0"][3] is False


def test_confirmation_keeps_rollback_restores_and_one_change_at_a_time(netns, engine):
    before = dumps(netns)
    result = engine.apply(nmstate.parse_document(MODEL_AS_YAML), confirm_timeout=30)
    assert "awaiting confirmation" in result.message
    assert engine.busy and engine.awaiting_confirmation() is not None
    with pytest.raises(FailedPrecondition, match="awaits confirmation"):
        engine.apply(nmstate.parse_document(MODEL_AS_YAML))
    engine.confirm()
    assert not engine.busy and engine.awaiting_confirmation() is None
    with pytest.raises(FailedPrecondition, match="nothing|no network change"):
        engine.confirm()
    assert "br0" in brief(netns)["links"]
    undone = engine.rollback()                # to the state before the last apply
    assert undone.rolled_back
    assert dumps(netns) == before
    assert engine.managed() == frozenset()
    with pytest.raises(FailedPrecondition, match="no applied network change"):
        engine.rollback()


def test_an_unconfirmed_change_is_rolled_back_by_recover(netns, tmp_path, engine):
    before = dumps(netns)
    engine.apply(nmstate.parse_document(MODEL_AS_YAML), confirm_timeout=60)
    engine.backend.close()
    restarted = make_engine(netns, tmp_path / "state")
    try:
        message = restarted.recover()
        assert message and "before the change was confirmed" in message
        assert restarted.recover() is None
    finally:
        restarted.backend.close()
    assert dumps(netns) == before


def test_a_second_apply_while_one_runs_is_refused(netns, tmp_path):
    started, release = threading.Event(), threading.Event()

    def hook(index, step):
        if index == 0:
            started.set()
            release.wait(10)
    engine = make_engine(netns, tmp_path / "state", step_hook=hook)
    worker = threading.Thread(target=engine.apply, args=(nmstate.parse_document(MODEL_AS_YAML),))
    worker.start()
    try:
        assert started.wait(10)
        assert engine.busy
        with pytest.raises(FailedPrecondition, match="already being applied"):
            engine.apply(nmstate.parse_document(MODEL_AS_YAML))
        with pytest.raises(FailedPrecondition, match="already being applied"):
            engine.rollback()
    finally:
        release.set()
        worker.join(10)
        engine.backend.close()
    assert "br0" in brief(netns)["links"]     # the first one finished


BRIDGE_MTU = """
interfaces:
- {name: p0, type: veth, veth: {peer: p1}}
- {name: p1, type: veth, veth: {peer: p0}}
- {name: q0, type: veth, veth: {peer: q1}}
- {name: q1, type: veth, veth: {peer: q0}}
- name: brm
  type: linux-bridge
  mtu: 1400
  bridge: {port: [{name: p0}, {name: q0}]}
"""


def test_a_bridge_keeps_its_mtu_when_its_ports_join(engine, netns):
    """A joining port resets a bridge's MTU to the ports' least (1500 here)
    unless the MTU was set by a change request after; without that, the
    verification saw 1500 and rolled the whole apply back."""
    result = engine.apply(nmstate.parse_document(BRIDGE_MTU))
    assert result.changed and not result.rolled_back
    got = brief(netns)["links"]
    assert got["brm"][2] == 1400
    assert got["p0"][1:3] == ("brm", 1500) and got["q0"][1:3] == ("brm", 1500)
    assert engine.plan(nmstate.parse_document(BRIDGE_MTU)).empty
    # a port joining later keeps the MTU too (the one set after the first ports is the user's)
    ip("link", "add", "r0", "type", "veth", "peer", "name", "r1", ns=netns)
    more = BRIDGE_MTU.replace("{name: q0}]", "{name: q0}, {name: r0}]")
    assert engine.apply(nmstate.parse_document(more)).changed
    assert brief(netns)["links"]["brm"][2] == 1400 and brief(netns)["links"]["r0"][1] == "brm"
