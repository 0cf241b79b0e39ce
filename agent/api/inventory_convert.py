"""Inventory model -> protobuf: the only place these types meet."""
from __future__ import annotations

import dataclasses

from google.protobuf import timestamp_pb2

from agent.gen.hostagent.v1 import inventory_pb2 as pb
from agent.inventory.model import (BlockDevice, CpuInfo, DmiInfo, HostInfo, MemoryInfo,
                                   NodeInventory, NumaNode)


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp | None:
    """``None`` for 0 (unknown), so the field stays unset."""
    if not seconds:
        return None
    # Split before scaling: a float holds ~16 significant digits, not 19.
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    return timestamp_pb2.Timestamp(seconds=whole + nanos // 1_000_000_000,
                                   nanos=nanos % 1_000_000_000)


def _fields(value) -> dict:
    """A flat dataclass's fields by name (messages with the same names)."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def host_to_proto(h: HostInfo) -> pb.HostInfo:
    fields = _fields(h)
    fields.update(role=int(h.role), boot_time=_timestamp(h.boot_time))
    return pb.HostInfo(**fields)


def dmi_to_proto(d: DmiInfo) -> pb.DmiInfo:
    return pb.DmiInfo(**_fields(d))


def numa_to_proto(n: NumaNode) -> pb.NumaNode:
    return pb.NumaNode(id=n.id, cpus=list(n.cpus), memory_bytes=n.memory_bytes)


def cpu_to_proto(c: CpuInfo) -> pb.CpuInfo:
    fields = _fields(c)
    fields.update(flags=list(c.flags), numa_nodes=[numa_to_proto(n) for n in c.numa_nodes])
    return pb.CpuInfo(**fields)


def memory_to_proto(m: MemoryInfo) -> pb.MemoryInfo:
    return pb.MemoryInfo(**_fields(m))


def block_device_to_proto(b: BlockDevice) -> pb.BlockDevice:
    return pb.BlockDevice(**_fields(b))


def inventory_to_proto(inv: NodeInventory) -> pb.NodeInventory:
    return pb.NodeInventory(
        host=host_to_proto(inv.host),
        dmi=dmi_to_proto(inv.dmi),
        cpu=cpu_to_proto(inv.cpu),
        memory=memory_to_proto(inv.memory),
        block_devices=[block_device_to_proto(b) for b in inv.block_devices],
        collected_at=_timestamp(inv.collected_at),
        nics=[nic_to_proto(n) for n in inv.nics],
    )


def nic_to_proto(n) -> pb.Nic:
    return pb.Nic(name=n.name, mac=n.mac, kind=n.kind, pci_address=n.pci_address, driver=n.driver,
                  firmware_version=n.firmware_version, speed_mbps=n.speed_mbps or 0, mtu=n.mtu,
                  master=n.master, vf_count=n.vf_count, vf_macs=list(n.vf_macs),
                  numa_node=-1 if n.numa_node is None else n.numa_node)
