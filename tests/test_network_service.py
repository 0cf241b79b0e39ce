"""``hostagent.v1.Network`` as a client sees it, with the engine replaced by
the in-test fake (tests/network_fake.py): the real agent process, gRPC over
its unix socket (root: admin) and loopback TCP (viewer).  What is tested
here is the service's own part, which needs no kernel: request validation,
roles, the protected interfaces and force, the switch, the conversion to
the typed answer, and how the caller's connection is found.  Applies,
commit-confirmed, kill -9 and events on a real kernel: test_network_api.py.
"""
from __future__ import annotations

import os
import socket
import time

import grpc
import pytest

from agent.backends.route_lookup import connection_path, local_address_of
from agent.features.network_control import caller_path
from agent.gen.hostagent.v1 import inventory_pb2_grpc, network_pb2 as pb
from agent.gen.hostagent.v1 import network_pb2_grpc, operations_pb2, operations_pb2_grpc
from agent.gen.hostagent.v1 import telemetry_pb2_grpc
from tests.agent_process import AgentProcess
from tests.helpers import rpc_error

pytestmark = pytest.mark.integration

CONFIG = """
[auth]
identities = { insecure = "viewer" }
[network]
protected_interfaces = ["eth0"]
"""
BR = """
interfaces:
  - name: br0
    type: linux-bridge
    state: up
    mtu: 9000
    bridge: {port: []}
    ipv4:
      enabled: true
      address:
        - {ip: 10.9.0.1, prefix-length: 24}
"""
DOWN_ETH0 = "interfaces: [{name: eth0, type: ethernet, state: down}]\n"
SUCCEEDED, FAILED = operations_pb2.OPERATION_STATE_SUCCEEDED, operations_pb2.OPERATION_STATE_FAILED


class Env:
    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        self.unix = grpc.insecure_channel(f"unix:{agent.socket}")
        self.net = network_pb2_grpc.NetworkStub(self.unix)
        self.viewer = network_pb2_grpc.NetworkStub(agent.channel())
        self.ops = operations_pb2_grpc.OperationsStub(self.unix)
        self.telemetry = telemetry_pb2_grpc.TelemetryStub(self.unix)
        self.inventory = inventory_pb2_grpc.InventoryStub(self.unix)
        self.n = 0

    def rid(self) -> str:
        self.n += 1
        return f"net-{os.getpid()}-{self.n}-{time.monotonic_ns()}"

    def wait(self, op):
        return self.ops.WaitOperation(operations_pb2.WaitOperationRequest(name=op.name), timeout=30)

    def apply(self, text: str, **kw):
        resp = self.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(
            request_id=kw.pop("request_id", None) or self.rid(), desired=text, **kw), timeout=10)
        return resp, self.wait(resp.operation)

    def confirm(self):
        return self.wait(self.net.ConfirmNetworkConfig(pb.ConfirmNetworkConfigRequest(request_id=self.rid())))

    def rollback(self):
        return self.wait(self.net.RollbackNetworkConfig(pb.RollbackNetworkConfigRequest(request_id=self.rid())))

    def names(self) -> dict[str, pb.NetworkInterface]:
        state = self.net.GetNetworkState(pb.GetNetworkStateRequest(), timeout=5).state
        return {i.name: i for i in state.interfaces}


def start(tmp, config: str = CONFIG, **env) -> AgentProcess:
    agent = AgentProcess(tmp, config=config, module="tests.network_agent",
                         env={"HOSTAGENT_TEST_FAKE_NETWORK": "1", **env})
    try:
        return agent.wait_ready()
    except BaseException:
        agent.stop()
        raise


@pytest.fixture
def env(tmp_path):
    agent = start(tmp_path)
    try:
        yield Env(agent)
    finally:
        agent.stop()


BAD_CONFIGS = (
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: []}, colour: red}]",
     "desired.interfaces[0].colour"),
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: []}, mtu: big}]", "desired.interfaces[0].mtu"),
    ("interfaces: [{name: br0", "desired"),
    ("interfaces: [{name: eth9, type: ethernet}]", "desired.interfaces[0].name"),  # the engine's check
    ("", "desired"),
)


def test_bad_configs_and_request_fields_are_invalid_argument_naming_the_field(env):
    def refused(req, field):
        code, details = rpc_error(lambda: env.net.ApplyNetworkConfig(req, timeout=5))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field + ":"), details

    for text, field in BAD_CONFIGS:
        refused(pb.ApplyNetworkConfigRequest(request_id=env.rid(), desired=text), field)
    for timeout in ({"nanos": 500_000_000}, {"seconds": 7200}):
        refused(pb.ApplyNetworkConfigRequest(request_id=env.rid(), desired=BR, confirm_timeout=timeout),
                "confirm_timeout")
    refused(pb.ApplyNetworkConfigRequest(request_id="bad id!", desired=BR), "request_id")
    refused(pb.ApplyNetworkConfigRequest(desired=BR), "request_id")  # required unless dry_run
    assert not env.ops.ListOperations(operations_pb2.ListOperationsRequest(kind="network.apply"),
                                      timeout=5).operations
    assert "br0" not in env.names()


def test_the_protected_interface_needs_force_and_force_needs_admin(env, tmp_path):
    _, op = env.apply(DOWN_ETH0)
    assert op.state == FAILED and op.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "eth0" in op.error.message and env.names()["eth0"].state == pb.INTERFACE_STATE_UP
    assert env.names()["eth0"].protected
    _, op = env.apply(DOWN_ETH0, force=True)  # root on the unix socket is admin
    assert op.state == SUCCEEDED and env.names()["eth0"].state == pb.INTERFACE_STATE_DOWN


def test_roles_viewer_reads_only_operator_cannot_force(tmp_path):
    agent = start(tmp_path, CONFIG.replace('insecure = "viewer"',
                                           'insecure = "viewer", "unix:uid:0" = "operator"'))
    try:
        e = Env(agent)
        assert "eth0" in {i.name for i in e.viewer.GetNetworkState(pb.GetNetworkStateRequest(),
                                                                   timeout=5).state.interfaces}
        code, _ = rpc_error(lambda: e.viewer.ApplyNetworkConfig(
            pb.ApplyNetworkConfigRequest(request_id="v1", desired=BR), timeout=5))
        assert code is grpc.StatusCode.PERMISSION_DENIED
        code, details = rpc_error(lambda: e.apply(DOWN_ETH0, force=True))
        assert code is grpc.StatusCode.PERMISSION_DENIED and details.startswith("force")
        assert e.apply(BR)[1].state == SUCCEEDED  # an operator may apply
    finally:
        agent.stop()


def test_disabled_network_management_says_so(tmp_path):
    agent = start(tmp_path, CONFIG + "enabled = false\n")
    try:
        code, details = rpc_error(lambda: Env(agent).names())
        assert code is grpc.StatusCode.FAILED_PRECONDITION and "enabled = false" in details
    finally:
        agent.stop()


# /proc/net/tcp as this kernel writes it: a listener and both ends of one
# loopback connection (127.0.0.1:8080 <- 127.0.0.2:51000), then tcp6 with an
# IPv4-mapped peer of a dual-stack listener.
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:1F90 0200007F:C738 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0200007F:C738 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000A01000A:1F90 0000000000000000FFFF00000900000A:D431 01 0
"""


def test_the_local_address_of_a_connection_comes_from_the_socket_whose_peer_matches():
    assert local_address_of([TCP], "127.0.0.2", 51000) == "127.0.0.1"
    assert local_address_of([TCP, TCP6], "10.0.0.9", 54321) == "10.0.1.10"


def test_a_live_loopback_connection_is_carried_by_lo_and_a_unix_caller_by_nothing():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, (peer_ip, peer_port) = server.accept()
        with client, conn:
            assert connection_path(peer_ip, peer_port) == ("lo", "127.0.0.1")
            assert caller_path(f"ipv4:{peer_ip}:{peer_port}") == ("lo", "127.0.0.1")
    assert caller_path("unix:/run/hostagent/grpc.sock") == (None, None)


def test_every_kind_converts_to_its_typed_options_and_back_to_the_same_nmstate():
    from agent.api.network_convert import state_to_proto
    from agent.network.nmstate import from_nmstate, parse_document, to_nmstate

    text = """
interfaces:
  - {name: bond0, type: bond, link-aggregation: {mode: 802.3ad, port: [p1, p2],
     options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer3+4}}}
  - {name: p1, type: veth, veth: {peer: p2}}
  - {name: p2, type: veth, veth: {peer: p1}}
  - {name: br0, type: linux-bridge, bridge: {options: {stp: {enabled: false}},
     port: [{name: bond0, vlan: {mode: trunk, trunk-tags: [{id: 10}, {id: 20}], enable-native: true, tag: 1}}]}}
  - {name: br0.10, type: vlan, vlan: {base-iface: br0, id: 10, protocol: 802.1ad}}
  - {name: vx1, type: vxlan, vxlan: {id: 4242, remote: 239.1.1.1, base-iface: br0, destination-port: 4789}}
  - {name: mv0, type: mac-vlan, mac-vlan: {base-iface: br0, mode: bridge}}
  - {name: d0, type: dummy, state: down, mtu: 9000, ipv6: {enabled: true, address: [{ip: "fd00::1", prefix-length: 64}]}}
routes:
  config: [{destination: 10.10.0.0/16, next-hop-address: 10.9.0.254, next-hop-interface: br0, metric: 5, table-id: 100}]
"""
    state = parse_document(text)
    out = state_to_proto(state, frozenset({"br0"}), frozenset({"d0"}), 1_800_000_000.0)
    i = {x.name: x for x in out.state.interfaces}
    assert i["bond0"].bond.mode == "802.3ad" and list(i["bond0"].bond.ports) == ["p1", "p2"]
    assert i["bond0"].bond.miimon == 100 and i["bond0"].bond.lacp_rate == "fast"
    assert i["p1"].controller == "bond0" and i["p1"].veth.peer == "p2"
    port = i["br0"].bridge.ports[0]
    assert (port.name, port.pvid, list(port.vlans)) == ("bond0", 1, [10, 20]) and i["br0"].managed
    assert i["br0"].bridge.vlan_filtering and not i["br0"].bridge.stp
    assert (i["br0.10"].vlan.base_iface, i["br0.10"].vlan.id, i["br0.10"].vlan.protocol) == ("br0", 10, "802.1ad")
    assert i["vx1"].vxlan.id == 4242 and i["vx1"].vxlan.group == "239.1.1.1" and not i["vx1"].vxlan.remote
    assert i["mv0"].macvlan.mode == "bridge" and i["mv0"].type == pb.INTERFACE_TYPE_MACVLAN
    assert i["d0"].state == pb.INTERFACE_STATE_DOWN and i["d0"].protected and i["d0"].mtu == 9000
    assert [(a.ip, a.prefix_length) for a in i["d0"].ipv6] == [("fd00::1", 64)]
    r = out.state.routes[0]
    assert (r.destination, r.next_hop_address, r.next_hop_interface, r.metric, r.table_id) == \
        ("10.10.0.0/16", "10.9.0.254", "br0", 5, 100)
    assert out.confirm_deadline.seconds == 1_800_000_000
    # The YAML answer is nmstate that reads back to the same state.
    import yaml
    assert from_nmstate(yaml.safe_load(out.nmstate)) == from_nmstate(to_nmstate(state, frozenset({"br0"})))


def test_the_docs_table_lists_every_supported_nmstate_key():
    from pathlib import Path

    from agent.network.nmstate import SUPPORTED_KEYS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "network.md").read_text()
    table = doc.split("## Supported nmstate subset", 1)[1]
    missing = [key for key, _, _ in SUPPORTED_KEYS if f"| `{key}` |" not in table]
    assert not missing, missing


def test_the_network_table_names_a_bad_key_and_prints_back():
    from agent.features.network import NetworkConfig, network_to_toml, parse_network

    def fail(key, message):
        return ValueError(f"{key}: {message}")

    assert parse_network(None, fail) == NetworkConfig()
    cfg = parse_network({"enabled": False, "protected_interfaces": ["eno1", "bond0.100"]}, fail)
    assert cfg == NetworkConfig(False, ("eno1", "bond0.100"))
    import tomllib
    assert parse_network(tomllib.loads("\n".join(network_to_toml(cfg)))["network"], fail) == cfg
    for bad, key in (({"protected": 1}, "network.protected"),
                     ({"protected_interfaces": ["x" * 16]}, "network.protected_interfaces"),
                     ({"protected_interfaces": "eno1"}, "network.protected_interfaces"),
                     ({"enabled": "yes"}, "network.enabled")):
        with pytest.raises(ValueError, match=f"^{key}: "):
            parse_network(bad, fail)
