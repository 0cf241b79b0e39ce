"""The hub's windows, top N and filters, its bounds, per-VM labels and the
flows collector's bounded series; the Flows servicer's validation."""
from __future__ import annotations

import socket

import pytest
from google.protobuf import duration_pb2

from agent.api.flows_service import FlowsService
from agent.errors import FailedPrecondition, InvalidArgument
from agent.flows.collector import FlowsCollector
from agent.flows.hub import FlowFilter, FlowHub, InterfaceState
from agent.flows.vms import VmPort
from agent.gen.hostagent.v1 import flows_pb2 as pb
from agent.telemetry.collector import CollectorContext, NoData

V4 = socket.inet_aton
VM = VmPort("tap1a2b3c4d-5e", "6f1b4c2e-8a3d-4e7f-9b21-0c5d6e7f8a90", "billing-db-1", "instance-0000002a",
            "9a8b7c6d5e4f40312a1b2c3d4e5f6071", "finance", "1a2b3c4d-5e")


def flow(ifindex, src, dst, sport, dport, packets, nbytes, proto=17, direction=0, vni=0):
    return (ifindex, direction, 0, vni, 0x0800, V4(src), V4(dst), proto, sport, dport, packets, nbytes)


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


def make_hub(**kw):
    clock = Clock()
    hub = FlowHub(kw.pop("max_flows", 100), retention=60.0, step=5.0, clock=clock, **kw)
    hub.set_vms({"tap1a2b3c4d-5e": VM})
    return hub, clock


NAMES = {1: "eth0", 2: "tap1a2b3c4d-5e"}


def test_top_n_by_bytes_or_packets_and_the_totals():
    hub, clock = make_hub()
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", 1, 2, 10, 100_000),
             flow(1, "10.0.0.3", "10.0.0.4", 3, 4, 500, 30_000),
             flow(2, "10.1.0.1", "10.1.0.2", 5, 6, 1, 64)], NAMES)
    clock.t += 1
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", 1, 2, 10, 100_000)], NAMES)  # same key: summed
    a = hub.query(60, 2)
    assert [(f.src_port, f.packets, f.bytes) for f in a.flows] == [(1, 20, 200_000), (3, 500, 30_000)]
    assert (a.total_flows, a.total_packets, a.total_bytes) == (3, 521, 230_064)
    assert [f.src_port for f in hub.query(60, 3, by_packets=True).flows] == [3, 1, 5]
    assert hub.query(60, 3).flows[2].vm == VM and hub.query(60, 3).flows[0].vm is None


def test_window_covers_only_recent_buckets():
    hub, clock = make_hub()
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", 1, 2, 1, 100)], NAMES)
    clock.t += 30
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", 1, 2, 2, 200)], NAMES)
    assert hub.query(10, 5).flows[0].packets == 2
    assert hub.query(60, 5).flows[0].packets == 3
    clock.t += 66  # the second bucket ([1030, 1035)) is now wholly older than 60 s
    hub.add([], NAMES)
    assert hub.query(60, 5).flows == []


def test_filters():
    hub, _ = make_hub()
    hub.add([flow(1, "10.0.0.1", "192.168.1.9", 1, 2, 1, 100, vni=42),
             flow(2, "10.1.0.1", "10.1.0.2", 5, 6, 1, 64),
             flow(1, "172.16.0.1", "172.16.0.2", 7, 8, 1, 10)], NAMES)
    q = lambda **f: sorted(r.src_port for r in hub.query(60, 10, flt=FlowFilter(**f)).flows)  # noqa: E731
    assert q(interface="tap*") == [5]
    assert q(interface="eth0") == [1, 7]
    assert q(instance="billing-db-1") == [5] and q(instance=VM.instance_uuid) == [5]
    assert q(instance="nope") == []
    assert q(vni=42) == [1] and q(vni=0) == [5, 7]
    assert q(address="192.168.0.0/16") == [1] and q(address="10.1.0.2") == [5]


def test_memory_is_bounded_per_bucket():
    hub, _ = make_hub(max_flows=10)
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", p, 2, 1, 100) for p in range(25)], NAMES)
    assert hub.query(60, 100).total_flows == 10 and hub.overflow == 15


def test_collector_series_are_per_interface_and_vm_never_per_flow():
    hub, _ = make_hub()
    hub.set_interface(InterfaceState("eth0", 1, 100, samples=7, drops=2))
    hub.add([flow(1, "10.0.0.1", "10.0.0.2", p, 2, 100, 10_000) for p in range(50)]
            + [flow(2, "10.1.0.1", "10.1.0.2", 5, 6, 3, 300, proto=6, direction=1)], NAMES)
    hub.table_counters = {"frames": 10, "truncated": 1, "malformed": 2, "evicted": 4}
    rows = []

    class Batch:
        def counter(self, family, raw, *labels):
            rows.append((family.name, labels, raw))

        def gauge(self, family, value, *labels):
            rows.append((family.name, labels, value))
    FlowsCollector(CollectorContext(), hub).collect(Batch())
    got = {(n, l): v for n, l, v in rows}
    assert got[("hostagent_flow_packets_total", ("eth0", "in", "udp"))] == 5000
    assert got[("hostagent_flow_bytes_total", ("tap1a2b3c4d-5e", "out", "tcp"))] == 300
    assert got[("hostagent_flow_vm_bytes_total", (VM.instance_uuid, "billing-db-1", VM.project_id, "out",
                                                  "tcp"))] == 300
    assert got[("hostagent_flow_sampler_drops_total", ("eth0",))] == 2
    assert got[("hostagent_flow_sampling_rate", ("eth0",))] == 100
    assert got[("hostagent_flow_table_frames_total", ("malformed",))] == 2
    assert len(rows) < 20  # 50 flows, a dozen series
    hub.set_vms({})  # the VM left: its series leave
    rows.clear()
    FlowsCollector(CollectorContext(), hub).collect(Batch())
    assert not any(n.startswith("hostagent_flow_vm_") for n, _, _ in rows)
    with pytest.raises(NoData):
        FlowsCollector(CollectorContext(), None).collect(Batch())


def _window(seconds):
    d = duration_pb2.Duration()
    d.FromSeconds(seconds)
    return d


def test_service_answers_and_validates():
    hub, _ = make_hub()
    hub.add([flow(2, "10.1.0.1", "10.1.0.2", 5, 6, 3, 300)], NAMES)
    svc = FlowsService(hub)
    resp = svc.ListFlows(pb.ListFlowsRequest(filter=pb.FlowFilter(instance="billing-db-1")), None)
    [f] = resp.flows
    assert (f.src, f.dst, f.protocol, f.src_port, f.dst_port, f.packets, f.bytes) == (
        "10.1.0.1", "10.1.0.2", 17, 5, 6, 3, 300)
    assert f.direction == pb.FLOW_DIRECTION_IN and f.vm.project_id == VM.project_id
    assert f.vm.port_prefix == "1a2b3c4d-5e"
    for req, field in ((pb.ListFlowsRequest(window=_window(3600)), "window"),
                       (pb.ListFlowsRequest(top=10_001), "top"),
                       (pb.ListFlowsRequest(order=7), "order"),
                       (pb.ListFlowsRequest(filter=pb.FlowFilter(address="10.0.0.300")), "filter.address"),
                       (pb.ListFlowsRequest(filter=pb.FlowFilter(vni=1 << 24, has_vni=True)), "filter.vni")):
        with pytest.raises(InvalidArgument) as exc:
            svc.ListFlows(req, None)
        assert exc.value.field == field
    with pytest.raises(InvalidArgument) as exc:
        next(svc.WatchFlows(pb.WatchFlowsRequest(interval=duration_pb2.Duration(nanos=10)), None))
    assert exc.value.field == "interval"
    with pytest.raises(FailedPrecondition):
        FlowsService(None).ListFlows(pb.ListFlowsRequest(), None)
