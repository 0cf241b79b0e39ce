"""``hostagent.v1.Network`` end to end on a real kernel: the real agent
process runs inside a namespace the test creates (``ip netns exec``, see
tests/network_agent.py) and manages that namespace's interfaces through
pyroute2; the test talks gRPC over its unix socket (root: admin) and checks
the kernel with ``ip -j``.  This kernel has veth and bridge (no 802.1Q VLAN,
bond or dummy: those are the real-kernel lane's), so the topology here is a
bridge with a veth port, an address and a route.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from agent.gen.hostagent.v1 import inventory_pb2, inventory_pb2_grpc, network_pb2 as pb
from agent.gen.hostagent.v1 import network_pb2_grpc, operations_pb2, operations_pb2_grpc
from agent.gen.hostagent.v1 import telemetry_pb2 as tpb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc
from tests.agent_process import AgentProcess
from tests.helpers import rpc_error
from tests.netns import ip

pytestmark = [pytest.mark.integration, pytest.mark.netns]

TENANT = """
interfaces:
  - name: br0
    type: linux-bridge
    state: up
    bridge:
      options: {stp: {enabled: false}}
      port: [{name: v0}]
    ipv4:
      enabled: true
      address: [{ip: 10.9.0.1, prefix-length: 24}]
  - {name: v0, type: veth, state: up, veth: {peer: v1}}
  - {name: v1, type: veth, state: up, mtu: 1400, veth: {peer: v0}}
routes:
  config:
    - {destination: 10.10.0.0/16, next-hop-address: 10.9.0.254, next-hop-interface: br0}
"""
EXTRA = "interfaces: [{name: br9, type: linux-bridge, state: up, bridge: {port: []}}]\n"
SUCCEEDED, FAILED = operations_pb2.OPERATION_STATE_SUCCEEDED, operations_pb2.OPERATION_STATE_FAILED


def kernel(ns: str) -> dict:
    """What ``ip -j`` shows: links (with master, mtu, up), addresses, routes."""
    links = {l["ifname"]: l for l in json.loads(ip("-j", "-d", "link", "show", ns=ns))}
    addrs = {a["ifname"]: sorted(f"{i['local']}/{i['prefixlen']}" for i in a["addr_info"]
                                 if i["family"] == "inet")
             for a in json.loads(ip("-j", "addr", "show", ns=ns))}
    routes = sorted((r["dst"], r.get("gateway", ""), r.get("dev", ""))
                    for r in json.loads(ip("-j", "route", "show", ns=ns)) if r.get("protocol") != "kernel")
    return {"links": {n: (l.get("master", ""), l["mtu"], "UP" in l["flags"]) for n, l in links.items()},
            "addrs": addrs, "routes": routes}


class Env:
    def __init__(self, agent: AgentProcess, ns: str) -> None:
        self.agent, self.ns = agent, ns
        self.unix = grpc.insecure_channel(f"unix:{agent.socket}")
        self.net = network_pb2_grpc.NetworkStub(self.unix)
        self.ops = operations_pb2_grpc.OperationsStub(self.unix)
        self.telemetry = telemetry_pb2_grpc.TelemetryStub(self.unix)
        self.inventory = inventory_pb2_grpc.InventoryStub(self.unix)
        self.n = 0

    def rid(self) -> str:
        self.n += 1
        return f"api-{self.n}-{time.monotonic_ns()}"

    def wait(self, op):
        return self.ops.WaitOperation(operations_pb2.WaitOperationRequest(name=op.name), timeout=30)

    def apply(self, text: str, **kw):
        resp = self.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(
            request_id=self.rid(), desired=text, **kw), timeout=10)
        return resp, self.wait(resp.operation)

    def call(self, method: str, request):
        return self.wait(getattr(self.net, method)(request(request_id=self.rid()), timeout=10))


def start(tmp, ns: str, **env) -> AgentProcess:
    agent = AgentProcess(tmp, module="tests.network_agent", env={"HOSTAGENT_TEST_NETNS": ns, **env},
                         config='[collectors.netdev]\ninterval = "1s"\n')
    try:
        return agent.wait_ready()
    except BaseException:
        agent.stop()
        raise


def warm_up(ns: str, stream) -> None:
    """netdev's link watcher starts with its first collection, a few seconds
    after the agent is ready: add links until the stream shows one."""
    stop = threading.Event()

    def add() -> None:
        for n in range(60):
            ip("link", "add", f"warm{n}", "type", "bridge", ns=ns)
            if stop.wait(0.25):
                return
    adder = threading.Thread(target=add, daemon=True)
    adder.start()
    try:
        next(e for e in stream if e.labels.get("device", "").startswith("warm"))
    finally:
        stop.set()
        adder.join()
    for name in kernel(ns)["links"]:
        if name.startswith("warm"):
            ip("link", "del", name, ns=ns)


@pytest.fixture
def env(tmp_path, netns):
    agent = start(tmp_path, netns)
    try:
        yield Env(agent, netns)
    finally:
        agent.stop()


def test_plan_apply_events_state_inventory_and_an_idempotent_reapply(env):
    before = kernel(env.ns)
    dry = env.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(desired=TENANT, dry_run=True), timeout=10)
    order = [(s.action, s.target) for s in dry.plan.steps]
    assert order.index(("link.add", "br0")) < order.index(("addr.add", "br0")) \
        < order.index(("route.add", "10.10.0.0/16"))
    assert kernel(env.ns) == before  # a dry run changes nothing
    stream = env.telemetry.WatchEvents(tpb.WatchEventsRequest(kinds=["network.*", "link.*"]), timeout=20)
    events = []
    try:
        warm_up(env.ns, stream)
        before = kernel(env.ns)
        resp, op = env.apply(TENANT)
        assert op.state == SUCCEEDED, op.error.message
        for event in stream:
            events.append(event)
            if event.kind == "network.applied":
                break
        while not any(e.kind.startswith("link.") and e.labels.get("device") == "br0" for e in events):
            events.append(next(iter(stream)))
    finally:
        stream.cancel()
    assert [(s.action, s.target) for s in resp.plan.steps] == order
    applied = next(e for e in events if e.kind == "network.applied")
    assert applied.labels["operation"] == op.name and applied.labels["changed"] == "true"
    k = kernel(env.ns)
    assert k["links"]["br0"] == ("", 1500, True) and k["links"]["v0"][0] == "br0"
    assert k["links"]["v1"] == ("", 1400, True)
    assert k["addrs"]["br0"] == ["10.9.0.1/24"]
    assert ("10.10.0.0/16", "10.9.0.254", "br0") in k["routes"]
    state = env.net.GetNetworkState(pb.GetNetworkStateRequest(), timeout=10)
    ifaces = {i.name: i for i in state.state.interfaces}
    assert {n for n, i in ifaces.items() if i.managed} == {"br0", "v0", "v1"}
    assert not ifaces["lo"].managed and ifaces["br0"].type == pb.INTERFACE_TYPE_BRIDGE
    assert [p.name for p in ifaces["br0"].bridge.ports] == ["v0"]
    assert "type: linux-bridge" in state.nmstate and "10.10.0.0/16" in state.nmstate
    nics = {n.name: n.managed for n in env.inventory.GetInventory(
        inventory_pb2.GetInventoryRequest(refresh=True), timeout=20).inventory.nics}
    assert nics["br0"] and nics["v1"]
    # Again: an empty plan, the operation changes nothing, no link is touched.
    resp, op = env.apply(TENANT)
    assert not resp.plan.steps and op.result["changed"] is False and kernel(env.ns) == k


def test_a_failing_step_rolls_back_to_the_snapshot_and_says_so(tmp_path, netns):
    agent = start(tmp_path, netns, HOSTAGENT_TEST_FAIL_STEP="5")  # after links, before the address
    try:
        e = Env(agent, netns)
        before = kernel(netns)
        _, op = e.apply(TENANT)
        assert op.state == FAILED and "injected failure at step 5" in op.error.message
        assert "rolled back" in op.error.message and kernel(netns) == before
        assert [x["reason"] for x in agent.events("network.rolled_back") if x.get("operation")] \
            == ["apply_failed"]
    finally:
        agent.stop()


def test_unconfirmed_apply_rolls_back_at_the_deadline_a_confirmed_one_stays(env):
    before = kernel(env.ns)
    stream = env.telemetry.WatchEvents(tpb.WatchEventsRequest(kinds=["network.rolled_back"]), timeout=15)
    try:
        time.sleep(0.3)  # the watch is registered
        t0 = time.monotonic()
        rid = env.rid()
        resp = env.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(
            request_id=rid, desired=EXTRA, confirm_timeout={"seconds": 3}), timeout=10)
        op = env.wait(resp.operation)
        assert op.state == SUCCEEDED and op.result["confirm_deadline"] and "br9" in kernel(env.ns)["links"]
        assert env.net.GetNetworkState(pb.GetNetworkStateRequest(), timeout=10).HasField("confirm_deadline")
        code, details = rpc_error(lambda: env.apply(TENANT))
        assert code is grpc.StatusCode.FAILED_PRECONDITION and "awaits confirmation" in details
        again = env.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(  # a retry: its operation back
            request_id=rid, desired=EXTRA, confirm_timeout={"seconds": 3}), timeout=10)
        assert again.operation.name == op.name
        event = next(iter(stream))
        elapsed = time.monotonic() - t0
    finally:
        stream.cancel()
    assert event.labels["reason"] == "confirm_timeout" and 2.5 < elapsed < 6, (event, elapsed)
    assert kernel(env.ns) == before
    assert not env.net.GetNetworkState(pb.GetNetworkStateRequest(), timeout=10).HasField("confirm_deadline")
    late = env.call("ConfirmNetworkConfig", pb.ConfirmNetworkConfigRequest)  # nothing awaits any more
    assert late.state == FAILED and late.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]

    _, op = env.apply(EXTRA, confirm_timeout={"seconds": 3})
    assert env.call("ConfirmNetworkConfig", pb.ConfirmNetworkConfigRequest).state == SUCCEEDED
    time.sleep(3.5)
    assert "br9" in kernel(env.ns)["links"]
    # Rollback returns to the state before the last apply, confirmed or not.
    assert env.call("RollbackNetworkConfig", pb.RollbackNetworkConfigRequest).state == SUCCEEDED
    assert kernel(env.ns) == before


def test_validation_names_the_field_and_changes_nothing(env):
    before = kernel(env.ns)
    for text, field in (
        ("interfaces: [{name: v0, type: veth, veth: {peer: v1}, mtu: 20}]", "desired.interfaces[0].mtu"),
        ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: [{name: nope}]}}]",
         "desired.interfaces[0].bridge.port[0].name"),
        ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: fe80::1}]}",
         "desired.routes.config[0].next-hop-address"),
        # the engine validates the model; the error names the nmstate path the user wrote
        ("interfaces: [{name: a, type: linux-bridge, bridge: {port: []}}, {name: b, type: linux-bridge,"
         " bridge: {port: []}}, {name: br5, type: linux-bridge, bridge: {port: [{name: nope}]}}]",
         "desired.interfaces[2].bridge.port[0].name"),
        ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 198.51.100.1}]}",
         "desired.routes.config[0].next-hop-address"),
        ("interfaces: [{name: a, type: linux-bridge, bridge: {port: []}},"
         " {name: v5, type: vlan, vlan: {base-iface: nope, id: 5}}]", "desired.interfaces[1].vlan.base-iface"),
    ):
        code, details = rpc_error(lambda: env.apply(text))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field + ":"), details
    assert kernel(env.ns) == before


def test_kill_9_mid_apply_is_rolled_back_before_the_agent_serves(tmp_path, netns):
    many = "interfaces:\n" + "".join(
        f"  - {{name: b{i}, type: linux-bridge, state: up, bridge: {{port: []}}}}\n" for i in range(12))
    before = kernel(netns)
    agent = start(tmp_path, netns, HOSTAGENT_TEST_STEP_DELAY="0.15")
    e = Env(agent, netns)
    resp = e.net.ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(request_id="k9", desired=many), timeout=10)
    deadline = time.monotonic() + 15
    while "b1" not in kernel(netns)["links"]:  # some steps made, most not
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    code, details = rpc_error(lambda: e.apply(EXTRA))  # one apply at a time, answered at once
    assert code is grpc.StatusCode.FAILED_PRECONDITION and "in progress" in details, details
    assert time.monotonic() - t0 < 1.0
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    assert "b0" in kernel(netns)["links"]  # half applied
    again = start(tmp_path, netns)
    try:
        e = Env(again, netns)
        first = e.net.GetNetworkState(pb.GetNetworkStateRequest(), timeout=10)
        assert not {i.name for i in first.state.interfaces} & {f"b{i}" for i in range(12)}
        assert kernel(netns) == before
        assert again.events("network.recovered")
        op = e.ops.GetOperation(operations_pb2.GetOperationRequest(name=resp.operation.name), timeout=5)
        assert op.state == FAILED and op.error.code == grpc.StatusCode.ABORTED.value[0]
    finally:
        again.stop()


CLIENT = """
import json, sys, grpc
from agent.gen.hostagent.v1 import network_pb2 as pb, network_pb2_grpc, operations_pb2, operations_pb2_grpc
address, ca, cert, key = sys.argv[1:5]
creds = grpc.ssl_channel_credentials(open(ca, "rb").read(), open(key, "rb").read(), open(cert, "rb").read())
ch = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "localhost")])
resp = network_pb2_grpc.NetworkStub(ch).ApplyNetworkConfig(pb.ApplyNetworkConfigRequest(
    request_id="own-link", desired=sys.stdin.read()), timeout=10)
op = operations_pb2_grpc.OperationsStub(ch).WaitOperation(
    operations_pb2.WaitOperationRequest(name=resp.operation.name), timeout=30)
print(json.dumps({"state": op.state, "code": op.error.code, "message": op.error.message}))
"""


def test_the_link_carrying_the_callers_connection_is_not_taken_down(tmp_path, netns, peer_netns):
    """An operator reaching the agent over mutual TLS through veth0 asks to
    take veth0 down: refused, the link stays up (the caller is not cut off)."""
    from tests.certs import make_pki
    from tests.netns import veth_pair

    pki = make_pki(tmp_path)
    veth_pair(netns, peer_netns, addr_a="10.200.0.1/30", addr_b="10.200.0.2/30")
    agent = AgentProcess(tmp_path, "--grpc-listen", "10.200.0.1:0", module="tests.network_agent",
                         env={"HOSTAGENT_TEST_NETNS": netns}, config=f"""
[tls]
cert_file = "{pki.server.cert}"
key_file = "{pki.server.key}"
client_ca_file = "{pki.ca.cert_file}"
[auth.identities]
"cert:spiffe://test/operator" = "operator"
""")
    try:
        agent.wait_ready()
        out = subprocess.run(["ip", "netns", "exec", peer_netns, sys.executable, "-c", CLIENT, agent.grpc_address,
                              str(pki.ca.cert_file), str(pki.operator.cert), str(pki.operator.key)],
                             input="interfaces: [{name: veth0, type: ethernet, state: down}]\n",
                             capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["state"] == FAILED and result["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "veth0" in result["message"] and "protected" in result["message"], result
        assert kernel(netns)["links"]["veth0"][2]  # still up
    finally:
        agent.stop()
