"""Typed inventory values; field for field the messages of ``hostagent.v1``
(``proto/hostagent/v1/inventory.proto``).

Every field has an empty default, so ``CpuInfo()`` is what a part that could
not be read reports.  Times are Unix seconds (``float``); ``0.0`` means unknown.
Conversion to protobuf lives in ``agent.api.inventory_convert`` only.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class HostRole(enum.IntEnum):
    """Values match ``hostagent.v1.HostRole``."""

    UNSPECIFIED = 0
    BARE_METAL = 1
    HYPERVISOR = 2
    GUEST = 3


@dataclass(frozen=True)
class HostInfo:
    hostname: str = ""
    machine_id: str = ""
    kernel_release: str = ""
    kernel_version: str = ""
    architecture: str = ""
    os_name: str = ""
    os_id: str = ""
    os_version: str = ""
    boot_time: float = 0.0
    role: HostRole = HostRole.UNSPECIFIED
    virtualization: str = ""


@dataclass(frozen=True)
class DmiInfo:
    present: bool = False
    sys_vendor: str = ""
    product_name: str = ""
    product_serial: str = ""
    product_uuid: str = ""
    board_vendor: str = ""
    board_name: str = ""
    board_serial: str = ""
    bios_vendor: str = ""
    bios_version: str = ""
    bios_date: str = ""
    chassis_asset_tag: str = ""


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...] = ()
    memory_bytes: int = 0


@dataclass(frozen=True)
class CpuInfo:
    model: str = ""
    vendor: str = ""
    sockets: int = 0
    cores: int = 0
    threads: int = 0
    flags: tuple[str, ...] = ()
    virtualization_capable: bool = False
    microcode: str = ""
    numa_nodes: tuple[NumaNode, ...] = ()
    signature: str = ""


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int = 0
    swap_total_bytes: int = 0
    hugepage_size_bytes: int = 0
    hugepages_total: int = 0


@dataclass(frozen=True)
class BlockDevice:
    name: str
    size_bytes: int = 0
    model: str = ""
    vendor: str = ""
    serial: str = ""
    rotational: bool = False
    wwn: str = ""
    removable: bool = False
    logical_block_size: int = 0
    physical_block_size: int = 0
    transport: str = ""


@dataclass(frozen=True)
class NodeInventory:
    host: HostInfo = HostInfo()
    dmi: DmiInfo = DmiInfo()
    cpu: CpuInfo = CpuInfo()
    memory: MemoryInfo = MemoryInfo()
    block_devices: tuple[BlockDevice, ...] = ()
    collected_at: float = 0.0
    nics: tuple["Nic", ...] = ()  # agent.inventory.nics.Nic
    # Not in the proto: names of the parts whose collection raised (their
    # values above are the empty defaults).  For logs and tests.
    failed_parts: tuple[str, ...] = ()
