import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from agent.gen.hostagent.v1 import operations_pb2 as _operations_pb2
from agent.gen.hostagent.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ComputeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPUTE_MODE_UNSPECIFIED: _ClassVar[ComputeMode]
    COMPUTE_MODE_DEFAULT: _ClassVar[ComputeMode]
    COMPUTE_MODE_EXCLUSIVE_PROCESS: _ClassVar[ComputeMode]
    COMPUTE_MODE_PROHIBITED: _ClassVar[ComputeMode]

class PcieAffinity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PCIE_AFFINITY_UNSPECIFIED: _ClassVar[PcieAffinity]
    PCIE_AFFINITY_SWITCH: _ClassVar[PcieAffinity]
    PCIE_AFFINITY_HOST_BRIDGE: _ClassVar[PcieAffinity]
COMPUTE_MODE_UNSPECIFIED: ComputeMode
COMPUTE_MODE_DEFAULT: ComputeMode
COMPUTE_MODE_EXCLUSIVE_PROCESS: ComputeMode
COMPUTE_MODE_PROHIBITED: ComputeMode
PCIE_AFFINITY_UNSPECIFIED: PcieAffinity
PCIE_AFFINITY_SWITCH: PcieAffinity
PCIE_AFFINITY_HOST_BRIDGE: PcieAffinity

class ListGpusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGpusResponse(_message.Message):
    __slots__ = ("driver_version", "cuda_version", "gpus")
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    driver_version: str
    cuda_version: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuStatus]
    def __init__(self, driver_version: _Optional[str] = ..., cuda_version: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuStatus, _Mapping]]] = ...) -> None: ...

class GetGpuRequest(_message.Message):
    __slots__ = ("gpu",)
    GPU_FIELD_NUMBER: _ClassVar[int]
    gpu: str
    def __init__(self, gpu: _Optional[str] = ...) -> None: ...

class GpuStatus(_message.Message):
    __slots__ = ("info", "up", "last_error", "circuit", "retry_in", "processes", "power_watts", "temperature_celsius", "utilization_percent", "last_xid")
    INFO_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    POWER_WATTS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LAST_XID_FIELD_NUMBER: _ClassVar[int]
    info: GpuInfo
    up: bool
    last_error: str
    circuit: str
    retry_in: _duration_pb2.Duration
    processes: int
    power_watts: float
    temperature_celsius: float
    utilization_percent: float
    last_xid: int
    def __init__(self, info: _Optional[_Union[GpuInfo, _Mapping]] = ..., up: _Optional[bool] = ..., last_error: _Optional[str] = ..., circuit: _Optional[str] = ..., retry_in: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., processes: _Optional[int] = ..., power_watts: _Optional[float] = ..., temperature_celsius: _Optional[float] = ..., utilization_percent: _Optional[float] = ..., last_xid: _Optional[int] = ...) -> None: ...

class GpuNic(_message.Message):
    __slots__ = ("name", "pci_address", "affinity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PCI_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    pci_address: str
    affinity: PcieAffinity
    def __init__(self, name: _Optional[str] = ..., pci_address: _Optional[str] = ..., affinity: _Optional[_Union[PcieAffinity, str]] = ...) -> None: ...

class PowerLimits(_message.Message):
    __slots__ = ("min_watts", "max_watts", "default_watts", "current_watts")
    MIN_WATTS_FIELD_NUMBER: _ClassVar[int]
    MAX_WATTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WATTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WATTS_FIELD_NUMBER: _ClassVar[int]
    min_watts: float
    max_watts: float
    default_watts: float
    current_watts: float
    def __init__(self, min_watts: _Optional[float] = ..., max_watts: _Optional[float] = ..., default_watts: _Optional[float] = ..., current_watts: _Optional[float] = ...) -> None: ...

class MigProfile(_message.Message):
    __slots__ = ("name", "id", "slices", "max_instances", "memory_mib")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: int
    slices: int
    max_instances: int
    memory_mib: int
    def __init__(self, name: _Optional[str] = ..., id: _Optional[int] = ..., slices: _Optional[int] = ..., max_instances: _Optional[int] = ..., memory_mib: _Optional[int] = ...) -> None: ...

class MigComputeInstance(_message.Message):
    __slots__ = ("id", "slices")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    id: int
    slices: int
    def __init__(self, id: _Optional[int] = ..., slices: _Optional[int] = ...) -> None: ...

class MigGpuInstance(_message.Message):
    __slots__ = ("id", "profile", "placement_start", "placement_size", "memory_mib", "compute_instances")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_START_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    id: int
    profile: str
    placement_start: int
    placement_size: int
    memory_mib: int
    compute_instances: _containers.RepeatedCompositeFieldContainer[MigComputeInstance]
    def __init__(self, id: _Optional[int] = ..., profile: _Optional[str] = ..., placement_start: _Optional[int] = ..., placement_size: _Optional[int] = ..., memory_mib: _Optional[int] = ..., compute_instances: _Optional[_Iterable[_Union[MigComputeInstance, _Mapping]]] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("uuid", "pci_bus_id", "index", "device", "name", "serial", "vbios_version", "board_part_number", "driver_version", "cuda_version", "cuda_capability", "memory_total_bytes", "power_limits", "numa_node", "persistence_mode", "compute_mode", "ecc_current", "ecc_pending", "mig_capable", "mig_current", "mig_pending", "mig_profiles", "mig_instances", "nvlinks", "nearby_nics")
    UUID_FIELD_NUMBER: _ClassVar[int]
    PCI_BUS_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    VBIOS_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOARD_PART_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    POWER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    PERSISTENCE_MODE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_MODE_FIELD_NUMBER: _ClassVar[int]
    ECC_CURRENT_FIELD_NUMBER: _ClassVar[int]
    ECC_PENDING_FIELD_NUMBER: _ClassVar[int]
    MIG_CAPABLE_FIELD_NUMBER: _ClassVar[int]
    MIG_CURRENT_FIELD_NUMBER: _ClassVar[int]
    MIG_PENDING_FIELD_NUMBER: _ClassVar[int]
    MIG_PROFILES_FIELD_NUMBER: _ClassVar[int]
    MIG_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NVLINKS_FIELD_NUMBER: _ClassVar[int]
    NEARBY_NICS_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    pci_bus_id: str
    index: int
    device: str
    name: str
    serial: str
    vbios_version: str
    board_part_number: str
    driver_version: str
    cuda_version: str
    cuda_capability: str
    memory_total_bytes: int
    power_limits: PowerLimits
    numa_node: int
    persistence_mode: bool
    compute_mode: ComputeMode
    ecc_current: bool
    ecc_pending: bool
    mig_capable: bool
    mig_current: bool
    mig_pending: bool
    mig_profiles: _containers.RepeatedCompositeFieldContainer[MigProfile]
    mig_instances: _containers.RepeatedCompositeFieldContainer[MigGpuInstance]
    nvlinks: int
    nearby_nics: _containers.RepeatedCompositeFieldContainer[GpuNic]
    def __init__(self, uuid: _Optional[str] = ..., pci_bus_id: _Optional[str] = ..., index: _Optional[int] = ..., device: _Optional[str] = ..., name: _Optional[str] = ..., serial: _Optional[str] = ..., vbios_version: _Optional[str] = ..., board_part_number: _Optional[str] = ..., driver_version: _Optional[str] = ..., cuda_version: _Optional[str] = ..., cuda_capability: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., power_limits: _Optional[_Union[PowerLimits, _Mapping]] = ..., numa_node: _Optional[int] = ..., persistence_mode: _Optional[bool] = ..., compute_mode: _Optional[_Union[ComputeMode, str]] = ..., ecc_current: _Optional[bool] = ..., ecc_pending: _Optional[bool] = ..., mig_capable: _Optional[bool] = ..., mig_current: _Optional[bool] = ..., mig_pending: _Optional[bool] = ..., mig_profiles: _Optional[_Iterable[_Union[MigProfile, _Mapping]]] = ..., mig_instances: _Optional[_Iterable[_Union[MigGpuInstance, _Mapping]]] = ..., nvlinks: _Optional[int] = ..., nearby_nics: _Optional[_Iterable[_Union[GpuNic, _Mapping]]] = ...) -> None: ...

class SetPersistenceModeRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "enabled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    enabled: bool
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetPowerLimitRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "watts")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    WATTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    watts: float
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., watts: _Optional[float] = ...) -> None: ...

class SetComputeModeRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "mode")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    mode: ComputeMode
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., mode: _Optional[_Union[ComputeMode, str]] = ...) -> None: ...

class SetEccModeRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "enabled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    enabled: bool
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetMigModeRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "enabled", "force")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    enabled: bool
    force: bool
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., enabled: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class MigInstanceSpec(_message.Message):
    __slots__ = ("profile", "compute_slices")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SLICES_FIELD_NUMBER: _ClassVar[int]
    profile: str
    compute_slices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, profile: _Optional[str] = ..., compute_slices: _Optional[_Iterable[int]] = ...) -> None: ...

class ConfigureMigRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "instances", "force")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    instances: _containers.RepeatedCompositeFieldContainer[MigInstanceSpec]
    force: bool
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[MigInstanceSpec, _Mapping]]] = ..., force: _Optional[bool] = ...) -> None: ...

class ResetGpuRequest(_message.Message):
    __slots__ = ("request_id", "gpu", "force")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    gpu: str
    force: bool
    def __init__(self, request_id: _Optional[str] = ..., gpu: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...
