"""Flow values <-> ``hostagent.v1`` Flows messages: the only place they meet."""
from __future__ import annotations

import ipaddress
import time

from google.protobuf import duration_pb2, timestamp_pb2

from agent.flows.hub import DIR_OUT, Answer, FlowRecord, InterfaceState
from agent.flows.vms import VmPort
from agent.gen.hostagent.v1 import flows_pb2 as pb


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else ""


def vm_to_proto(vm: VmPort) -> pb.FlowVm:
    return pb.FlowVm(instance_uuid=vm.instance_uuid, instance_name=vm.instance_name,
                     domain_name=vm.domain_name, project_id=vm.project_id,
                     project_name=vm.project_name, port_prefix=vm.port_prefix)


def flow_to_proto(f: FlowRecord) -> pb.Flow:
    msg = pb.Flow(interface=f.interface,
                  direction=pb.FLOW_DIRECTION_OUT if f.direction == DIR_OUT else pb.FLOW_DIRECTION_IN,
                  vlan=f.vlan, vni=f.vni, ethertype=f.ethertype, src=_address(f.src),
                  dst=_address(f.dst), protocol=f.protocol, src_port=f.src_port, dst_port=f.dst_port,
                  packets=f.packets, bytes=f.bytes)
    if f.vm is not None:
        msg.vm.CopyFrom(vm_to_proto(f.vm))
    return msg


def interface_to_proto(s: InterfaceState) -> pb.SampledInterface:
    return pb.SampledInterface(name=s.ifname, ifindex=s.ifindex, sampling_rate=s.rate,
                               samples=s.samples, drops=s.drops)


def answer_to_proto(answer: Answer, interfaces: list[InterfaceState]) -> pb.ListFlowsResponse:
    window = duration_pb2.Duration()
    window.FromNanoseconds(int(answer.window * 1e9))
    now = timestamp_pb2.Timestamp()
    now.FromNanoseconds(time.time_ns())
    return pb.ListFlowsResponse(
        flows=[flow_to_proto(f) for f in answer.flows], window=window, time=now,
        matched_flows=answer.total_flows, matched_packets=answer.total_packets,
        matched_bytes=answer.total_bytes,
        interfaces=[interface_to_proto(s) for s in sorted(interfaces, key=lambda s: s.ifname)])
