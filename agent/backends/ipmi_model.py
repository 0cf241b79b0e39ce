"""What the IPMI backend hands the BMC layer: plain, immutable values with no
pyghmi types in them, so collectors, servicers and tests never see the
library.  Beside the backend that makes them, below everything that reads them."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Health(enum.IntEnum):
    """Values match ``hostagent.v1.SensorHealth``; the ``ipmi_*_state``
    metrics use ``state_value`` (ipmi_exporter: 0 nominal, 1 warning,
    2 critical)."""

    OK = 1
    WARNING = 2
    CRITICAL = 3
    UNAVAILABLE = 4

    @property
    def state_value(self) -> float:
        return {Health.OK: 0.0, Health.WARNING: 1.0, Health.CRITICAL: 2.0}.get(self, float("nan"))


class SensorKind(enum.IntEnum):
    """Values match ``hostagent.v1.SensorKind``."""

    TEMPERATURE = 1
    FAN = 2
    VOLTAGE = 3
    CURRENT = 4
    POWER = 5
    OTHER = 6
    DISCRETE = 7


@dataclass(frozen=True)
class SensorReading:
    number: int
    name: str
    kind: SensorKind
    type: str          # IPMI sensor type name ("Temperature")
    unit: str          # "°C", "RPM", "V", "A", "W", "" for discrete
    value: float | None
    health: Health
    states: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelInfo:
    entries: int
    free_bytes: int
    add_time: int  # BMC timestamp of the most recent addition (changes when a record is added)
    erase_time: int


@dataclass(frozen=True)
class SelEntry:
    record_id: int
    time: float | None    # BMC clock, seconds since the epoch; None for pre-init stamps
    sensor: str
    sensor_number: int
    sensor_type: str
    event: str
    severity: str         # "info" | "warning" | "critical"
    deassertion: bool
    raw: bytes


@dataclass(frozen=True)
class BootSetting:
    device: str           # "default" | "pxe" | "disk" | "cdrom" | "bios-setup"
    persistent: bool
    uefi: bool


@dataclass(frozen=True)
class BmcIdentity:
    firmware_version: str
    guid: str
    manufacturer_id: int
    product_id: int
    device_id: int
    ipmi_version: str
    fru: dict[str, str] = field(default_factory=dict)


POWER_ACTIONS = ("on", "off", "soft", "cycle", "reset")
BOOT_DEVICES = ("default", "pxe", "disk", "cdrom", "bios-setup")
