import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from agent.gen.hostagent.v1 import bmc_pb2 as _bmc_pb2
from agent.gen.hostagent.v1 import gpu_pb2 as _gpu_pb2
from agent.gen.hostagent.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HostRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOST_ROLE_UNSPECIFIED: _ClassVar[HostRole]
    HOST_ROLE_BARE_METAL: _ClassVar[HostRole]
    HOST_ROLE_HYPERVISOR: _ClassVar[HostRole]
    HOST_ROLE_GUEST: _ClassVar[HostRole]
HOST_ROLE_UNSPECIFIED: HostRole
HOST_ROLE_BARE_METAL: HostRole
HOST_ROLE_HYPERVISOR: HostRole
HOST_ROLE_GUEST: HostRole

class GetInventoryRequest(_message.Message):
    __slots__ = ("refresh",)
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    refresh: bool
    def __init__(self, refresh: _Optional[bool] = ...) -> None: ...

class GetInventoryResponse(_message.Message):
    __slots__ = ("inventory",)
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    inventory: NodeInventory
    def __init__(self, inventory: _Optional[_Union[NodeInventory, _Mapping]] = ...) -> None: ...

class NodeInventory(_message.Message):
    __slots__ = ("host", "dmi", "cpu", "memory", "block_devices", "collected_at", "nics", "gpus", "bmcs")
    HOST_FIELD_NUMBER: _ClassVar[int]
    DMI_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICES_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    BMCS_FIELD_NUMBER: _ClassVar[int]
    host: HostInfo
    dmi: DmiInfo
    cpu: CpuInfo
    memory: MemoryInfo
    block_devices: _containers.RepeatedCompositeFieldContainer[BlockDevice]
    collected_at: _timestamp_pb2.Timestamp
    nics: _containers.RepeatedCompositeFieldContainer[Nic]
    gpus: _containers.RepeatedCompositeFieldContainer[_gpu_pb2.GpuInfo]
    bmcs: _containers.RepeatedCompositeFieldContainer[_bmc_pb2.BmcInfo]
    def __init__(self, host: _Optional[_Union[HostInfo, _Mapping]] = ..., dmi: _Optional[_Union[DmiInfo, _Mapping]] = ..., cpu: _Optional[_Union[CpuInfo, _Mapping]] = ..., memory: _Optional[_Union[MemoryInfo, _Mapping]] = ..., block_devices: _Optional[_Iterable[_Union[BlockDevice, _Mapping]]] = ..., collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nics: _Optional[_Iterable[_Union[Nic, _Mapping]]] = ..., gpus: _Optional[_Iterable[_Union[_gpu_pb2.GpuInfo, _Mapping]]] = ..., bmcs: _Optional[_Iterable[_Union[_bmc_pb2.BmcInfo, _Mapping]]] = ...) -> None: ...

class HostInfo(_message.Message):
    __slots__ = ("hostname", "machine_id", "kernel_release", "kernel_version", "architecture", "os_name", "os_id", "os_version", "boot_time", "role", "virtualization")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    MACHINE_ID_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    OS_NAME_FIELD_NUMBER: _ClassVar[int]
    OS_ID_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    VIRTUALIZATION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    machine_id: str
    kernel_release: str
    kernel_version: str
    architecture: str
    os_name: str
    os_id: str
    os_version: str
    boot_time: _timestamp_pb2.Timestamp
    role: HostRole
    virtualization: str
    def __init__(self, hostname: _Optional[str] = ..., machine_id: _Optional[str] = ..., kernel_release: _Optional[str] = ..., kernel_version: _Optional[str] = ..., architecture: _Optional[str] = ..., os_name: _Optional[str] = ..., os_id: _Optional[str] = ..., os_version: _Optional[str] = ..., boot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., role: _Optional[_Union[HostRole, str]] = ..., virtualization: _Optional[str] = ...) -> None: ...

class DmiInfo(_message.Message):
    __slots__ = ("present", "sys_vendor", "product_name", "product_serial", "product_uuid", "board_vendor", "board_name", "board_serial", "bios_vendor", "bios_version", "bios_date", "chassis_asset_tag")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    SYS_VENDOR_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SERIAL_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_UUID_FIELD_NUMBER: _ClassVar[int]
    BOARD_VENDOR_FIELD_NUMBER: _ClassVar[int]
    BOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    BOARD_SERIAL_FIELD_NUMBER: _ClassVar[int]
    BIOS_VENDOR_FIELD_NUMBER: _ClassVar[int]
    BIOS_VERSION_FIELD_NUMBER: _ClassVar[int]
    BIOS_DATE_FIELD_NUMBER: _ClassVar[int]
    CHASSIS_ASSET_TAG_FIELD_NUMBER: _ClassVar[int]
    present: bool
    sys_vendor: str
    product_name: str
    product_serial: str
    product_uuid: str
    board_vendor: str
    board_name: str
    board_serial: str
    bios_vendor: str
    bios_version: str
    bios_date: str
    chassis_asset_tag: str
    def __init__(self, present: _Optional[bool] = ..., sys_vendor: _Optional[str] = ..., product_name: _Optional[str] = ..., product_serial: _Optional[str] = ..., product_uuid: _Optional[str] = ..., board_vendor: _Optional[str] = ..., board_name: _Optional[str] = ..., board_serial: _Optional[str] = ..., bios_vendor: _Optional[str] = ..., bios_version: _Optional[str] = ..., bios_date: _Optional[str] = ..., chassis_asset_tag: _Optional[str] = ...) -> None: ...

class NumaNode(_message.Message):
    __slots__ = ("id", "cpus", "memory_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: int
    cpus: _containers.RepeatedScalarFieldContainer[int]
    memory_bytes: int
    def __init__(self, id: _Optional[int] = ..., cpus: _Optional[_Iterable[int]] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class CpuInfo(_message.Message):
    __slots__ = ("model", "vendor", "sockets", "cores", "threads", "flags", "virtualization_capable", "microcode", "numa_nodes", "signature")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    SOCKETS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    VIRTUALIZATION_CAPABLE_FIELD_NUMBER: _ClassVar[int]
    MICROCODE_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    model: str
    vendor: str
    sockets: int
    cores: int
    threads: int
    flags: _containers.RepeatedScalarFieldContainer[str]
    virtualization_capable: bool
    microcode: str
    numa_nodes: _containers.RepeatedCompositeFieldContainer[NumaNode]
    signature: str
    def __init__(self, model: _Optional[str] = ..., vendor: _Optional[str] = ..., sockets: _Optional[int] = ..., cores: _Optional[int] = ..., threads: _Optional[int] = ..., flags: _Optional[_Iterable[str]] = ..., virtualization_capable: _Optional[bool] = ..., microcode: _Optional[str] = ..., numa_nodes: _Optional[_Iterable[_Union[NumaNode, _Mapping]]] = ..., signature: _Optional[str] = ...) -> None: ...

class MemoryInfo(_message.Message):
    __slots__ = ("total_bytes", "swap_total_bytes", "hugepage_size_bytes", "hugepages_total")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    swap_total_bytes: int
    hugepage_size_bytes: int
    hugepages_total: int
    def __init__(self, total_bytes: _Optional[int] = ..., swap_total_bytes: _Optional[int] = ..., hugepage_size_bytes: _Optional[int] = ..., hugepages_total: _Optional[int] = ...) -> None: ...

class BlockDevice(_message.Message):
    __slots__ = ("name", "size_bytes", "model", "vendor", "serial", "rotational", "wwn", "removable", "logical_block_size", "physical_block_size", "transport")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ROTATIONAL_FIELD_NUMBER: _ClassVar[int]
    WWN_FIELD_NUMBER: _ClassVar[int]
    REMOVABLE_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    model: str
    vendor: str
    serial: str
    rotational: bool
    wwn: str
    removable: bool
    logical_block_size: int
    physical_block_size: int
    transport: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., model: _Optional[str] = ..., vendor: _Optional[str] = ..., serial: _Optional[str] = ..., rotational: _Optional[bool] = ..., wwn: _Optional[str] = ..., removable: _Optional[bool] = ..., logical_block_size: _Optional[int] = ..., physical_block_size: _Optional[int] = ..., transport: _Optional[str] = ...) -> None: ...

class Nic(_message.Message):
    __slots__ = ("name", "mac", "kind", "pci_address", "driver", "firmware_version", "speed_mbps", "mtu", "master", "vf_count", "vf_macs", "numa_node", "managed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PCI_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEED_MBPS_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    VF_COUNT_FIELD_NUMBER: _ClassVar[int]
    VF_MACS_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    MANAGED_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    kind: str
    pci_address: str
    driver: str
    firmware_version: str
    speed_mbps: int
    mtu: int
    master: str
    vf_count: int
    vf_macs: _containers.RepeatedScalarFieldContainer[str]
    numa_node: int
    managed: bool
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., kind: _Optional[str] = ..., pci_address: _Optional[str] = ..., driver: _Optional[str] = ..., firmware_version: _Optional[str] = ..., speed_mbps: _Optional[int] = ..., mtu: _Optional[int] = ..., master: _Optional[str] = ..., vf_count: _Optional[int] = ..., vf_macs: _Optional[_Iterable[str]] = ..., numa_node: _Optional[int] = ..., managed: _Optional[bool] = ...) -> None: ...
