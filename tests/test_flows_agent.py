"""The real agent process (``python -m agent serve``) with [sampling] on a
veth in test namespaces: ListFlows over gRPC reports exactly the traffic
sent, labelled with the VM that libvirt's XML says owns the interface, and
/metrics serves the per-VM series.  This proves the wiring."""
from __future__ import annotations

import time
import urllib.request

import grpc

from agent.gen.hostagent.v1 import flows_pb2 as pb
from agent.gen.hostagent.v1 import flows_pb2_grpc
from tests.agent_process import AgentProcess
from tests.flows_traffic import A_IP, B_IP, send_udp, udp_sink, veth_pair
from tests.test_flows_config_vms import FIXTURES


def test_agent_serves_list_flows_for_sampled_traffic(netns, peer_netns, tmp_path, capsys):
    veth_pair(netns, peer_netns)
    libvirt = tmp_path / "libvirt"
    libvirt.mkdir()
    # a Nova domain whose first interface is our veth end
    xml = (FIXTURES / "instance-0000002a.xml").read_text().replace("tap1a2b3c4d-5e", "va")
    (libvirt / "instance-0000002a.xml").write_text(xml)
    config = f"""
[sampling]
interfaces = ["v*"]
namespace = "{netns}"
rate = 1
libvirt_dir = "{libvirt}"
"""
    sink = udp_sink(peer_netns, B_IP, 6400)
    try:
        with AgentProcess(tmp_path, config=config) as agent:
            agent.wait_ready()
            sampling = agent.wait_event("flows.sampling")
            assert sampling["device"] == "va" and sampling["rate"] == "1"
            send_udp(netns, A_IP, 5400, B_IP, 6400, 500, 25)
            stub = flows_pb2_grpc.FlowsStub(agent.channel())
            request = pb.ListFlowsRequest(filter=pb.FlowFilter(instance="billing-db-1", address=B_IP))
            deadline = time.monotonic() + 10
            while True:
                resp = stub.ListFlows(request, timeout=5)
                got = [f for f in resp.flows if f.protocol == 17 and f.dst_port == 6400]
                if got and got[0].packets >= 25 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            [f] = got
            assert (f.interface, f.direction, f.src, f.dst, f.src_port) == ("va", pb.FLOW_DIRECTION_OUT,
                                                                           A_IP, B_IP, 5400)
            assert (f.packets, f.bytes) == (25, 25 * (14 + 20 + 8 + 500))
            assert (f.vm.instance_name, f.vm.project_name) == ("billing-db-1", "finance")
            assert [i.name for i in resp.interfaces] == ["va"] and resp.interfaces[0].drops == 0
            watch = stub.WatchFlows(pb.WatchFlowsRequest(query=request), timeout=10)
            first = next(watch)  # at once, the same answer
            assert [(g.src_port, g.packets) for g in first.flows if g.dst_port == 6400] == [(5400, 25)]
            watch.cancel()
            # a bad request names its field
            try:
                stub.ListFlows(pb.ListFlowsRequest(top=20_000), timeout=5)
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT and "top" in exc.details()
            else:
                raise AssertionError("top=20000 was accepted")
            for _ in range(20):  # the collector's first run
                metrics = urllib.request.urlopen(agent.metrics_url, timeout=10).read().decode()
                if "hostagent_flow_vm_bytes_total" in metrics:
                    break
                time.sleep(0.25)
            assert 'hostagent_flow_vm_bytes_total{instance_uuid="6f1b4c2e' in metrics
            assert 'hostagent_flow_sampling_rate{device="va"} 1' in metrics
            from agent.cli import main
            assert main(["flows", "list", "--agent", agent.grpc_address, "--instance", "billing-db-1",
                         "--address", B_IP]) == 0
            table = capsys.readouterr().out
            assert f"va     out  billing-db-1" in table and f"{A_IP}:5400" in table and f"{B_IP}:6400" in table
            assert agent.stop() == 0
    finally:
        sink.close()


def test_cli_flows_list_reads_the_agent(tmp_path, capsys):
    """``hostagent flows list`` against an agent with sampling off: exit 1
    and the agent's reason (FAILED_PRECONDITION), not a traceback."""
    from agent.cli import main
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        rc = main(["flows", "list", "--agent", agent.grpc_address])
    assert rc == 1
    assert "sampling is off" in capsys.readouterr().err
