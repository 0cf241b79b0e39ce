"""GPU values <-> ``hostagent.v1`` messages: the only place they meet."""
from __future__ import annotations

from google.protobuf import duration_pb2

from agent.backends.nvml_model import GpuStatic
from agent.gen.hostagent.v1 import gpu_pb2 as pb
from agent.gpu.hub import GpuHub, GpuTarget
from agent.gpu.topology import SWITCH, NearbyNic

COMPUTE_MODES = {"default": pb.COMPUTE_MODE_DEFAULT,
                 "exclusive_process": pb.COMPUTE_MODE_EXCLUSIVE_PROCESS,
                 "prohibited": pb.COMPUTE_MODE_PROHIBITED}
COMPUTE_MODE_NAMES = {v: k for k, v in COMPUTE_MODES.items()}


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def info_to_proto(hub: GpuHub, target: GpuTarget, s: GpuStatic,
                  nics: list[NearbyNic] = ()) -> pb.GpuInfo:
    last = target.last
    current = last.power_limit_w if last is not None and last.power_limit_w is not None else None
    msg = pb.GpuInfo(
        uuid=s.uuid, pci_bus_id=s.pci_bus_id, index=max(s.index, 0), device=s.device,
        name=s.name, serial=s.serial, vbios_version=s.vbios, board_part_number=s.board_part_number,
        driver_version=hub.driver_version, cuda_version=hub.cuda_version,
        cuda_capability=s.cuda_capability, memory_total_bytes=s.memory_total_bytes or 0,
        power_limits=pb.PowerLimits(min_watts=s.power_min_w or 0, max_watts=s.power_max_w or 0,
                                    default_watts=s.power_default_w or 0,
                                    current_watts=current or 0),
        persistence_mode=bool(s.persistence),
        compute_mode=COMPUTE_MODES.get(s.compute_mode or "", pb.COMPUTE_MODE_UNSPECIFIED),
        ecc_current=bool(s.ecc_current), ecc_pending=bool(s.ecc_pending),
        mig_capable=s.mig_capable, mig_current=s.mig_current, mig_pending=s.mig_pending,
        mig_profiles=[pb.MigProfile(name=p.name, id=p.id, slices=p.slices,
                                    max_instances=p.instances, memory_mib=p.memory_mb)
                      for p in s.mig_profiles],
        mig_instances=[pb.MigGpuInstance(
            id=g.id, profile=g.profile, placement_start=g.placement_start,
            placement_size=g.placement_size, memory_mib=g.memory_mb,
            compute_instances=[pb.MigComputeInstance(id=c.id, slices=c.slices) for c in g.compute])
            for g in s.mig_instances],
        nvlinks=s.nvlinks,
        nearby_nics=[pb.GpuNic(name=n.name, pci_address=n.pci_address,
                               affinity=pb.PCIE_AFFINITY_SWITCH if n.affinity == SWITCH
                               else pb.PCIE_AFFINITY_HOST_BRIDGE) for n in nics])
    if s.numa_node is not None and s.numa_node >= 0:
        msg.numa_node = s.numa_node
    return msg


def status_to_proto(hub: GpuHub, target: GpuTarget, s: GpuStatic,
                    nics: list[NearbyNic] = ()) -> pb.GpuStatus:
    g = target.guard
    msg = pb.GpuStatus(info=info_to_proto(hub, target, s, nics), up=g.up is not False,
                       last_error=g.last_error, circuit=g.circuit, retry_in=_duration(g.retry_in()),
                       last_xid=target.last_xid or 0)
    last = target.last
    if last is not None:
        msg.processes = len(last.processes or ())
        if last.power_w is not None:
            msg.power_watts = last.power_w
        if last.gpu_temp_c is not None:
            msg.temperature_celsius = last.gpu_temp_c
        if last.gpu_util is not None:
            msg.utilization_percent = last.gpu_util
    return msg
