"""The flows collector: bounded telemetry of the sampled traffic.

Per sampled interface and per VM: estimated packets and bytes by direction
and protocol (tcp, udp, icmp, other, non_ip); per interface the samples
read, the samples the full ring dropped and the sampling rate; for the flow
table its evictions and the frames it could not fully decode.  Never a
series per flow: an interface has at most 2 x 5 series per family, whatever
its traffic (flows are for ListFlows).  A removed interface's series leave;
a VM's leave when its domain XML does.
"""
from __future__ import annotations

from agent.flows.hub import DIRECTIONS, FlowHub
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C, G = MetricType.COUNTER, MetricType.GAUGE
IF_LABELS = ("device", "direction", "protocol")
VM_LABELS = ("instance_uuid", "instance_name", "project_id", "direction", "protocol")

IF_PACKETS = FamilyDesc("hostagent_flow_packets_total", C, "Estimated packets (samples times the sampling "
                        "rate) by interface, direction and protocol.", "", IF_LABELS)
IF_BYTES = FamilyDesc("hostagent_flow_bytes_total", C, "Estimated bytes on the wire (samples' lengths "
                      "times the sampling rate) by interface, direction and protocol.", "bytes", IF_LABELS)
VM_PACKETS = FamilyDesc("hostagent_flow_vm_packets_total", C, "Estimated packets of a VM's interfaces "
                        "(libvirt), by direction (the tap's) and protocol.", "", VM_LABELS)
VM_BYTES = FamilyDesc("hostagent_flow_vm_bytes_total", C, "Estimated bytes of a VM's interfaces "
                      "(libvirt), by direction (the tap's) and protocol.", "bytes", VM_LABELS)
SAMPLES = FamilyDesc("hostagent_flow_samples_total", C, "Sampled packets read from the interface's ring.",
                     "", ("device",))
DROPS = FamilyDesc("hostagent_flow_sampler_drops_total", C, "Sampled packets the kernel dropped because "
                   "the interface's ring was full (the sampler fell behind).", "", ("device",))
RATE = FamilyDesc("hostagent_flow_sampling_rate", G, "Sampling rate in force: 1 packet in this many.",
                  "", ("device",))
TABLE = FamilyDesc("hostagent_flow_table_frames_total", C, "Frames the flow table decoded, by outcome "
                   "(ok, truncated: the snap length ended inside a header, malformed).", "", ("outcome",))
EVICTED = FamilyDesc("hostagent_flow_table_evictions_total", C, "Flows evicted from the full flow table "
                     "(the smallest first; [sampling] max_flows).")
FAMILIES = (IF_PACKETS, IF_BYTES, VM_PACKETS, VM_BYTES, SAMPLES, DROPS, RATE, TABLE, EVICTED)


class FlowsCollector:
    name = "flows"

    def __init__(self, ctx: CollectorContext, hub: FlowHub | None = None) -> None:
        self._hub = hub

    def collect(self, batch: Batch) -> None:
        hub = self._hub
        if hub is None:
            raise NoData("packet sampling is off ([sampling] interfaces is empty)")
        for s in hub.interfaces():
            batch.counter(SAMPLES, s.samples, s.ifname)
            batch.counter(DROPS, s.drops, s.ifname)
            batch.gauge(RATE, float(s.rate), s.ifname)
        per_if, per_vm, vms = hub.totals()
        for (name, direction, proto), (packets, nbytes) in sorted(per_if.items()):
            batch.counter(IF_PACKETS, packets, name, DIRECTIONS[direction], proto)
            batch.counter(IF_BYTES, nbytes, name, DIRECTIONS[direction], proto)
        for (uuid, direction, proto), (packets, nbytes) in sorted(per_vm.items()):
            vm = vms.get(uuid)
            if vm is None:
                continue
            labels = (uuid, vm.instance_name, vm.project_id, DIRECTIONS[direction], proto)
            batch.counter(VM_PACKETS, packets, *labels)
            batch.counter(VM_BYTES, nbytes, *labels)
        t = hub.table_counters
        if t:
            bad = t.get("truncated", 0) + t.get("malformed", 0)
            batch.counter(TABLE, max(0, t.get("frames", 0) - bad), "ok")
            batch.counter(TABLE, t.get("truncated", 0), "truncated")
            batch.counter(TABLE, t.get("malformed", 0), "malformed")
            batch.counter(EVICTED, t.get("evicted", 0))


# Cheap (a copy of a few dozen totals) and counters: run at each scrape so rates are right.
COLLECTOR = CollectorInfo(name="flows", factory=FlowsCollector, on_scrape=True)
