"""Failures roll a namespace back to exactly its snapshot (compared as `ip -j
link/addr/route` dumps): an injected failure at any step, real kernel
refusals, a verification mismatch, kill -9 mid-apply (recovered by a new
process), and random configs that either apply fully or leave nothing."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from agent.errors import InvalidArgument
from agent.network import nmstate
from agent.network.engine import ApplyFailed
from tests.netns import ip
from tests.test_network_support import brief, dumps, make_engine

# Changes what exists (so a rollback must put back an address, the route the
# kernel dropped with it, an MTU, a port) and adds what did not.
CONFIG = """
interfaces:
- {name: e0, type: ethernet, mtu: 1400, ipv4: {address: [{ip: 10.1.0.1, prefix-length: 24}, {ip: 10.1.9.1, prefix-length: 24}]}}
- {name: old0, type: veth, veth: {peer: old1}, state: absent}
- {name: v0, type: veth, mtu: 1300, veth: {peer: v1}, ipv4: {address: [{ip: 172.16.5.1, prefix-length: 24}]}}
- {name: v1, type: veth, veth: {peer: v0}}
- name: br0
  type: linux-bridge
  bridge: {options: {stp: {enabled: true}}, port: [{name: v1}, {name: e1}]}
  ipv4: {address: [{ip: 192.168.50.1, prefix-length: 24}]}
- {name: vx7, type: vxlan, vxlan: {id: 7, local: 172.16.5.1, remote: 172.16.5.2}}
routes:
  config:
  - {destination: 10.77.0.0/16, next-hop-address: 192.168.50.2, metric: 20}
  - {destination: 10.99.0.0/16, state: absent}
"""


def _prepare(ns: str) -> None:
    """What the namespace holds before the apply: e0 (an address the config
    removes and a boot-protocol route through it, which is not the config's
    and stays), e1, an old veth pair and a route the config removes."""
    ip("link", "add", "e0", "type", "veth", "peer", "name", "e1", ns=ns)
    ip("link", "add", "old0", "type", "veth", "peer", "name", "old1", ns=ns)
    ip("link", "set", "e0", "up", ns=ns)
    ip("link", "set", "old0", "mtu", "1280", ns=ns)
    ip("addr", "add", "10.1.0.1/24", "dev", "e0", ns=ns)
    ip("addr", "add", "10.2.0.1/24", "dev", "e0", ns=ns)
    ip("route", "add", "10.3.0.0/16", "via", "10.2.0.254", "proto", "boot", ns=ns)
    ip("route", "add", "10.99.0.0/16", "via", "10.1.0.254", "metric", "5", ns=ns)


def _steps(ns: str, tmp_path) -> int:
    engine = make_engine(ns, tmp_path / "count")
    try:
        return len(engine.plan(nmstate.parse_document(CONFIG)))
    finally:
        engine.backend.close()


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_an_injected_failure_at_any_step_restores_the_snapshot(netns, tmp_path, where):
    _prepare(netns)
    before = dumps(netns)
    total = _steps(netns, tmp_path)
    assert total > 15
    fail_at = {"first": 0, "middle": total // 2, "last": total - 1}[where]

    def hook(index, step):
        if index == fail_at:
            raise RuntimeError("injected")
    engine = make_engine(netns, tmp_path / "state", step_hook=hook)
    try:
        with pytest.raises(ApplyFailed, match=rf"step {fail_at + 1}/{total} .* failed: 'injected'; rolled back"):
            engine.apply(nmstate.parse_document(CONFIG))
        assert engine.managed() == frozenset() and not engine.busy
    finally:
        engine.backend.close()
    assert dumps(netns) == before


def test_the_same_config_applies_in_full_without_a_failure(netns, tmp_path):
    """The control for the test above: the config is good, only the injection failed it."""
    _prepare(netns)
    engine = make_engine(netns, tmp_path / "state")
    try:
        engine.apply(nmstate.parse_document(CONFIG))
        assert engine.plan(nmstate.parse_document(CONFIG)).empty
    finally:
        engine.backend.close()
    got = brief(netns)
    assert "old0" not in got["links"] and got["links"]["e0"][2] == 1400
    assert got["links"]["e0"][5] == ["10.1.0.1/24", "10.1.9.1/24"]
    assert [r[0] for r in got["routes"] if r[0] in ("10.99.0.0/16", "10.3.0.0/16")] == ["10.3.0.0/16"]


@pytest.mark.parametrize("change, error", [
    # a macvlan on a bridge port: the kernel refuses to make its base a port (EBUSY)
    ("- {name: mv0, type: mac-vlan, mac-vlan: {base-iface: v1, mode: bridge}}",
     r"ip link set v1 master br0\) failed: Device or resource busy \(errno 16\)"),
    # a second VXLAN with the same VNI and port: the kernel refuses it (EEXIST)
    ("- {name: vx8, type: vxlan, vxlan: {id: 7, remote: 172.16.5.3}}", r"ip link add vx8 .* \(errno 17\)"),
])
def test_a_step_the_kernel_refuses_restores_the_snapshot(netns, tmp_path, change, error):
    _prepare(netns)
    before = dumps(netns)
    engine = make_engine(netns, tmp_path / "state")
    try:
        with pytest.raises(ApplyFailed, match=error + ".*rolled back"):
            engine.apply(nmstate.parse_document(CONFIG.replace("routes:", change + "\nroutes:")))
    finally:
        engine.backend.close()
    assert dumps(netns) == before


def test_a_vlan_whose_base_vanishes_mid_apply_restores_the_snapshot(netns, tmp_path):
    """Validation saw the base; it is removed (by someone else) before the VLAN
    is created, so the kernel refuses the VLAN (ENODEV; EOPNOTSUPP on a kernel
    without 802.1Q) and the rest is undone."""
    _prepare(netns)
    ip("link", "add", "base0", "type", "veth", "peer", "name", "base1", ns=netns)
    before = {k: v for k, v in dumps(netns).items()}

    def hook(index, step):
        if step.action == "link.add" and step.target == "base0.5":
            ip("link", "del", "base0", ns=netns)
    engine = make_engine(netns, tmp_path / "state", step_hook=hook)
    config = CONFIG.replace("routes:", "- {name: base0.5, type: vlan, vlan: {base-iface: base0, id: 5}}\nroutes:")
    try:
        with pytest.raises(ApplyFailed, match=r"ip link add base0.5 .* failed: .*rolled back"):
            engine.apply(nmstate.parse_document(config))
    finally:
        engine.backend.close()
    after = dumps(netns)
    gone = {l["ifname"] for l in before["link"]} - {l["ifname"] for l in after["link"]}
    assert gone == {"base0", "base1"}   # what the other party removed stays removed
    strip = lambda d: {k: [x for x in v if x.get("ifname", x.get("dev")) not in gone] for k, v in d.items()}
    assert strip(after) == strip(before)


def test_a_verification_mismatch_fails_and_restores_the_snapshot(netns, tmp_path):
    _prepare(netns)
    before = dumps(netns)
    total = _steps(netns, tmp_path)

    def hook(index, step):  # someone changes v0 behind the engine's back, after it was set
        if index == total - 1:
            ip("link", "set", "v0", "mtu", "1200", ns=netns)
    engine = make_engine(netns, tmp_path / "state", step_hook=hook)
    try:
        with pytest.raises(ApplyFailed, match=r"verification found .*ip link set v0 mtu 1300.*rolled back"):
            engine.apply(nmstate.parse_document(CONFIG))
    finally:
        engine.backend.close()
    assert dumps(netns) == before


APPLY_AND_PAUSE = r"""
import sys, time
from agent.network import nmstate
from tests.test_network_support import make_engine
def hook(index, step):
    if index == int(sys.argv[3]):
        print("paused", flush=True)
        time.sleep(600)
engine = make_engine(sys.argv[1], sys.argv[2], step_hook=hook)
engine.apply(nmstate.parse_document(sys.stdin.read()))
"""
RECOVER = r"""
import sys
from tests.test_network_support import make_engine
engine = make_engine(sys.argv[1], sys.argv[2])
print(engine.recover())
print(engine.recover())
"""


def test_kill_9_mid_apply_is_rolled_back_by_the_next_start(netns, tmp_path):
    _prepare(netns)
    before = dumps(netns)
    state = str(tmp_path / "state")
    proc = subprocess.Popen([sys.executable, "-c", APPLY_AND_PAUSE, netns, state, "12"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        proc.stdin.write(CONFIG)
        proc.stdin.close()
        assert proc.stdout.readline().strip() == "paused"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert dumps(netns) != before            # it died half-way
    out = subprocess.run([sys.executable, "-c", RECOVER, netns, state], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert "rolled back transaction" in out[0] and "stopped mid-apply" in out[0]
    assert out[1] == "None"                  # once only
    assert dumps(netns) == before


# -- random configs against the kernel: all or nothing ---------------------------
NAMES = ["r0", "r1", "rb0", "rb1", "rv0", "rm0", "e0", "e1", "rq0"]


@st.composite
def configs(draw):
    interfaces = []
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=5, unique=True)):
        kind = draw(st.sampled_from(["veth", "linux-bridge", "vxlan", "mac-vlan", "dummy", "vlan", "bond",
                                     "ethernet"]))
        iface: dict = {"name": name, "type": kind, "state": draw(st.sampled_from(["up", "up", "down", "absent"]))}
        # mostly a name that exists or is declared, so most configs get past validation
        other = draw(st.sampled_from(["e0", "e1", "old0"] + [i["name"] for i in interfaces] + NAMES[:2]))
        iface.update({"veth": {"veth": {"peer": other}}, "linux-bridge": {"bridge": {"port": [{"name": other}]}},
                      "vxlan": {"vxlan": {"id": draw(st.integers(1, 30)), "remote": "10.9.9.9"}},
                      "mac-vlan": {"mac-vlan": {"base-iface": other}}, "vlan": {"vlan": {"base-iface": other, "id": 5}},
                      "bond": {"link-aggregation": {"mode": "active-backup", "port": [other]}}}.get(kind, {}))
        if draw(st.booleans()):
            iface["mtu"] = draw(st.sampled_from([576, 1280, 1500, 9000, 65535]))
        if draw(st.booleans()):
            iface["ipv4"] = {"address": [{"ip": f"10.{draw(st.integers(1, 3))}.0.{len(interfaces) + 1}",
                                          "prefix-length": 24}]}
        interfaces.append(iface)
    return {"interfaces": interfaces}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=configs())
def test_random_configs_apply_fully_or_leave_the_namespace_as_it_was(netns, tmp_path, doc):
    for link in dumps(netns)["link"]:  # every example starts from _prepare's state
        if link["ifname"] != "lo":
            subprocess.run(["ip", "-n", netns, "link", "del", link["ifname"]], capture_output=True)
    _prepare(netns)
    engine = make_engine(netns, tmp_path / secrets.token_hex(4))
    try:
        before = dumps(netns)
        try:
            desired = nmstate.from_nmstate(doc)
            engine.apply(desired)
        except InvalidArgument:
            event("refused by validation")
            assert dumps(netns) == before    # refused before anything changed
            return
        except ApplyFailed as err:
            event("failed in the kernel, rolled back")
            assert "rolled back" in str(err) and "incomplete" not in str(err)
            assert dumps(netns) == before
            return
        event("applied")
        assert engine.plan(desired).empty    # applied means the kernel equals the config
    finally:
        engine.backend.close()
