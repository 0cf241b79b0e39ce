import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from agent.gen.hostagent.v1 import operations_pb2 as _operations_pb2
from agent.gen.hostagent.v1 import options_pb2 as _options_pb2
from agent.gen.hostagent.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PowerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_STATE_UNSPECIFIED: _ClassVar[PowerState]
    POWER_STATE_ON: _ClassVar[PowerState]
    POWER_STATE_OFF: _ClassVar[PowerState]

class PowerAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_ACTION_UNSPECIFIED: _ClassVar[PowerAction]
    POWER_ACTION_ON: _ClassVar[PowerAction]
    POWER_ACTION_OFF: _ClassVar[PowerAction]
    POWER_ACTION_SOFT: _ClassVar[PowerAction]
    POWER_ACTION_CYCLE: _ClassVar[PowerAction]
    POWER_ACTION_RESET: _ClassVar[PowerAction]

class BootDevice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOOT_DEVICE_UNSPECIFIED: _ClassVar[BootDevice]
    BOOT_DEVICE_DEFAULT: _ClassVar[BootDevice]
    BOOT_DEVICE_PXE: _ClassVar[BootDevice]
    BOOT_DEVICE_DISK: _ClassVar[BootDevice]
    BOOT_DEVICE_CDROM: _ClassVar[BootDevice]
    BOOT_DEVICE_BIOS_SETUP: _ClassVar[BootDevice]

class BootMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOOT_MODE_UNSPECIFIED: _ClassVar[BootMode]
    BOOT_MODE_LEGACY: _ClassVar[BootMode]
    BOOT_MODE_UEFI: _ClassVar[BootMode]

class SensorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSOR_KIND_UNSPECIFIED: _ClassVar[SensorKind]
    SENSOR_KIND_TEMPERATURE: _ClassVar[SensorKind]
    SENSOR_KIND_FAN: _ClassVar[SensorKind]
    SENSOR_KIND_VOLTAGE: _ClassVar[SensorKind]
    SENSOR_KIND_CURRENT: _ClassVar[SensorKind]
    SENSOR_KIND_POWER: _ClassVar[SensorKind]
    SENSOR_KIND_OTHER: _ClassVar[SensorKind]
    SENSOR_KIND_DISCRETE: _ClassVar[SensorKind]

class SensorHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSOR_HEALTH_UNSPECIFIED: _ClassVar[SensorHealth]
    SENSOR_HEALTH_OK: _ClassVar[SensorHealth]
    SENSOR_HEALTH_WARNING: _ClassVar[SensorHealth]
    SENSOR_HEALTH_CRITICAL: _ClassVar[SensorHealth]
    SENSOR_HEALTH_UNAVAILABLE: _ClassVar[SensorHealth]
POWER_STATE_UNSPECIFIED: PowerState
POWER_STATE_ON: PowerState
POWER_STATE_OFF: PowerState
POWER_ACTION_UNSPECIFIED: PowerAction
POWER_ACTION_ON: PowerAction
POWER_ACTION_OFF: PowerAction
POWER_ACTION_SOFT: PowerAction
POWER_ACTION_CYCLE: PowerAction
POWER_ACTION_RESET: PowerAction
BOOT_DEVICE_UNSPECIFIED: BootDevice
BOOT_DEVICE_DEFAULT: BootDevice
BOOT_DEVICE_PXE: BootDevice
BOOT_DEVICE_DISK: BootDevice
BOOT_DEVICE_CDROM: BootDevice
BOOT_DEVICE_BIOS_SETUP: BootDevice
BOOT_MODE_UNSPECIFIED: BootMode
BOOT_MODE_LEGACY: BootMode
BOOT_MODE_UEFI: BootMode
SENSOR_KIND_UNSPECIFIED: SensorKind
SENSOR_KIND_TEMPERATURE: SensorKind
SENSOR_KIND_FAN: SensorKind
SENSOR_KIND_VOLTAGE: SensorKind
SENSOR_KIND_CURRENT: SensorKind
SENSOR_KIND_POWER: SensorKind
SENSOR_KIND_OTHER: SensorKind
SENSOR_KIND_DISCRETE: SensorKind
SENSOR_HEALTH_UNSPECIFIED: SensorHealth
SENSOR_HEALTH_OK: SensorHealth
SENSOR_HEALTH_WARNING: SensorHealth
SENSOR_HEALTH_CRITICAL: SensorHealth
SENSOR_HEALTH_UNAVAILABLE: SensorHealth

class ListBmcsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBmcsResponse(_message.Message):
    __slots__ = ("bmcs",)
    BMCS_FIELD_NUMBER: _ClassVar[int]
    bmcs: _containers.RepeatedCompositeFieldContainer[BmcStatus]
    def __init__(self, bmcs: _Optional[_Iterable[_Union[BmcStatus, _Mapping]]] = ...) -> None: ...

class BmcStatus(_message.Message):
    __slots__ = ("target", "address", "local", "up", "last_error", "circuit", "retry_in", "cipher_suite", "request_latency")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_FIELD_NUMBER: _ClassVar[int]
    CIPHER_SUITE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_LATENCY_FIELD_NUMBER: _ClassVar[int]
    target: str
    address: str
    local: bool
    up: bool
    last_error: str
    circuit: str
    retry_in: _duration_pb2.Duration
    cipher_suite: int
    request_latency: _duration_pb2.Duration
    def __init__(self, target: _Optional[str] = ..., address: _Optional[str] = ..., local: _Optional[bool] = ..., up: _Optional[bool] = ..., last_error: _Optional[str] = ..., circuit: _Optional[str] = ..., retry_in: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cipher_suite: _Optional[int] = ..., request_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetPowerStateRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class GetPowerStateResponse(_message.Message):
    __slots__ = ("target", "state")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    target: str
    state: PowerState
    def __init__(self, target: _Optional[str] = ..., state: _Optional[_Union[PowerState, str]] = ...) -> None: ...

class SetPowerStateRequest(_message.Message):
    __slots__ = ("request_id", "target", "action", "force", "wait_timeout")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target: str
    action: PowerAction
    force: bool
    wait_timeout: _duration_pb2.Duration
    def __init__(self, request_id: _Optional[str] = ..., target: _Optional[str] = ..., action: _Optional[_Union[PowerAction, str]] = ..., force: _Optional[bool] = ..., wait_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetBootDeviceRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class BootDeviceSetting(_message.Message):
    __slots__ = ("target", "device", "persistent", "mode")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    target: str
    device: BootDevice
    persistent: bool
    mode: BootMode
    def __init__(self, target: _Optional[str] = ..., device: _Optional[_Union[BootDevice, str]] = ..., persistent: _Optional[bool] = ..., mode: _Optional[_Union[BootMode, str]] = ...) -> None: ...

class SetBootDeviceRequest(_message.Message):
    __slots__ = ("request_id", "target", "device", "persistent", "mode")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target: str
    device: BootDevice
    persistent: bool
    mode: BootMode
    def __init__(self, request_id: _Optional[str] = ..., target: _Optional[str] = ..., device: _Optional[_Union[BootDevice, str]] = ..., persistent: _Optional[bool] = ..., mode: _Optional[_Union[BootMode, str]] = ...) -> None: ...

class SetIdentifyRequest(_message.Message):
    __slots__ = ("request_id", "target", "on", "duration")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target: str
    on: bool
    duration: _duration_pb2.Duration
    def __init__(self, request_id: _Optional[str] = ..., target: _Optional[str] = ..., on: _Optional[bool] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetSensorsRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class Sensor(_message.Message):
    __slots__ = ("number", "name", "kind", "type", "unit", "value", "health", "states")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    kind: SensorKind
    type: str
    unit: str
    value: float
    health: SensorHealth
    states: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[SensorKind, str]] = ..., type: _Optional[str] = ..., unit: _Optional[str] = ..., value: _Optional[float] = ..., health: _Optional[_Union[SensorHealth, str]] = ..., states: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSensorsResponse(_message.Message):
    __slots__ = ("target", "sensors", "read_time")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SENSORS_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    target: str
    sensors: _containers.RepeatedCompositeFieldContainer[Sensor]
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, target: _Optional[str] = ..., sensors: _Optional[_Iterable[_Union[Sensor, _Mapping]]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEventLogRequest(_message.Message):
    __slots__ = ("target", "max_entries")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    target: str
    max_entries: int
    def __init__(self, target: _Optional[str] = ..., max_entries: _Optional[int] = ...) -> None: ...

class SelEntry(_message.Message):
    __slots__ = ("record_id", "time", "sensor", "sensor_number", "sensor_type", "event", "severity", "deassertion", "raw")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    SENSOR_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SENSOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    DEASSERTION_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    record_id: int
    time: _timestamp_pb2.Timestamp
    sensor: str
    sensor_number: int
    sensor_type: str
    event: str
    severity: _telemetry_pb2.Severity
    deassertion: bool
    raw: bytes
    def __init__(self, record_id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sensor: _Optional[str] = ..., sensor_number: _Optional[int] = ..., sensor_type: _Optional[str] = ..., event: _Optional[str] = ..., severity: _Optional[_Union[_telemetry_pb2.Severity, str]] = ..., deassertion: _Optional[bool] = ..., raw: _Optional[bytes] = ...) -> None: ...

class GetEventLogResponse(_message.Message):
    __slots__ = ("target", "entries", "total_entries", "free_bytes")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    target: str
    entries: _containers.RepeatedCompositeFieldContainer[SelEntry]
    total_entries: int
    free_bytes: int
    def __init__(self, target: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[SelEntry, _Mapping]]] = ..., total_entries: _Optional[int] = ..., free_bytes: _Optional[int] = ...) -> None: ...

class ClearEventLogRequest(_message.Message):
    __slots__ = ("request_id", "target")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target: str
    def __init__(self, request_id: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class GetBmcInfoRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class FruInfo(_message.Message):
    __slots__ = ("board_manufacturer", "board_product", "board_serial", "board_part_number", "product_manufacturer", "product_name", "product_serial", "product_part_number", "product_version", "product_asset_tag", "chassis_serial")
    BOARD_MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    BOARD_PRODUCT_FIELD_NUMBER: _ClassVar[int]
    BOARD_SERIAL_FIELD_NUMBER: _ClassVar[int]
    BOARD_PART_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SERIAL_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_PART_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ASSET_TAG_FIELD_NUMBER: _ClassVar[int]
    CHASSIS_SERIAL_FIELD_NUMBER: _ClassVar[int]
    board_manufacturer: str
    board_product: str
    board_serial: str
    board_part_number: str
    product_manufacturer: str
    product_name: str
    product_serial: str
    product_part_number: str
    product_version: str
    product_asset_tag: str
    chassis_serial: str
    def __init__(self, board_manufacturer: _Optional[str] = ..., board_product: _Optional[str] = ..., board_serial: _Optional[str] = ..., board_part_number: _Optional[str] = ..., product_manufacturer: _Optional[str] = ..., product_name: _Optional[str] = ..., product_serial: _Optional[str] = ..., product_part_number: _Optional[str] = ..., product_version: _Optional[str] = ..., product_asset_tag: _Optional[str] = ..., chassis_serial: _Optional[str] = ...) -> None: ...

class BmcInfo(_message.Message):
    __slots__ = ("target", "address", "local", "firmware_version", "guid", "manufacturer_id", "product_id", "device_id", "ipmi_version", "fru")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GUID_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    IPMI_VERSION_FIELD_NUMBER: _ClassVar[int]
    FRU_FIELD_NUMBER: _ClassVar[int]
    target: str
    address: str
    local: bool
    firmware_version: str
    guid: str
    manufacturer_id: int
    product_id: int
    device_id: int
    ipmi_version: str
    fru: FruInfo
    def __init__(self, target: _Optional[str] = ..., address: _Optional[str] = ..., local: _Optional[bool] = ..., firmware_version: _Optional[str] = ..., guid: _Optional[str] = ..., manufacturer_id: _Optional[int] = ..., product_id: _Optional[int] = ..., device_id: _Optional[int] = ..., ipmi_version: _Optional[str] = ..., fru: _Optional[_Union[FruInfo, _Mapping]] = ...) -> None: ...
