"""ACPI/platform thermal zones and cooling devices, ``/sys/class/thermal/``.

Sources (Documentation/driver-api/thermal/sysfs-api.rst):
``thermal_zoneN/`` with ``type`` (``x86_pkg_temp``, ``acpitz``), ``temp``
(millidegrees Celsius), ``policy`` (the governor) and optionally ``mode``
(``enabled``/``disabled``); ``cooling_deviceN/`` with ``type``,
``max_state`` and ``cur_state`` (-1 possible, e.g. intel_powerclamp idle).

As in node_exporter: a disabled zone, or one whose ``temp`` cannot be read
(ENODATA, EAGAIN while a sensor is not ready), is left out; ``zone`` is the
N of ``thermal_zoneN`` and ``name`` the N of ``cooling_deviceN``.  Neither
kind present (most VMs) is :class:`NoData`.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
THERMAL = "sys/class/thermal"
ZONE_TEMP = FamilyDesc("node_thermal_zone_temp", G, "Temperature of the thermal zone in Celsius",
                       "celsius", ("zone", "type"))
CUR_STATE = FamilyDesc("node_cooling_device_cur_state", G,
                       "Current throttle state of the cooling device", label_names=("name", "type"))
MAX_STATE = FamilyDesc("node_cooling_device_max_state", G,
                       "Maximum throttle state of the cooling device", label_names=("name", "type"))

_ZONE = re.compile(r"^thermal_zone(\d+)$")
_COOLING = re.compile(r"^cooling_device(\d+)$")


class ThermalZone(NamedTuple):
    zone: str  # "0" for thermal_zone0
    type: str
    celsius: float


class CoolingDevice(NamedTuple):
    name: str  # "0" for cooling_device0
    type: str
    cur_state: int
    max_state: int


def _numbered(fs: HostFS, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(directory, number) of the matching entries, in numeric order."""
    found = [(e, m.group(1)) for e in fs.listdir(THERMAL) if (m := pattern.match(e))]
    return sorted(found, key=lambda pair: int(pair[1]))


def read_zone(fs: HostFS, entry: str, number: str) -> ThermalZone | None:
    """None for a disabled zone or one without type, policy or a readable temp."""
    base = f"{THERMAL}/{entry}"
    if fs.read_value(f"{base}/mode") == "disabled":
        return None
    zone_type = fs.read_value(f"{base}/type")
    temp = fs.read_int(f"{base}/temp")
    if zone_type is None or temp is None or fs.read_value(f"{base}/policy") is None:
        return None
    return ThermalZone(number, zone_type, temp / 1000.0)


def read_cooling_device(fs: HostFS, entry: str, number: str) -> CoolingDevice | None:
    base = f"{THERMAL}/{entry}"
    dev_type = fs.read_value(f"{base}/type")
    cur, top = fs.read_int(f"{base}/cur_state"), fs.read_int(f"{base}/max_state")
    if dev_type is None or cur is None or top is None:
        return None
    return CoolingDevice(number, dev_type, cur, top)


class ThermalZoneCollector:
    name = "thermal_zone"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        zone_dirs = _numbered(self._fs, _ZONE)
        cooling_dirs = _numbered(self._fs, _COOLING)
        if not zone_dirs and not cooling_dirs:
            raise NoData("no thermal zone or cooling device in /sys/class/thermal")
        for entry, number in zone_dirs:
            zone = read_zone(self._fs, entry, number)
            if zone is not None:
                batch.gauge(ZONE_TEMP, zone.celsius, zone.zone, zone.type)
        for entry, number in cooling_dirs:
            dev = read_cooling_device(self._fs, entry, number)
            if dev is not None:
                batch.gauge(CUR_STATE, dev.cur_state, dev.name, dev.type)
                batch.gauge(MAX_STATE, dev.max_state, dev.name, dev.type)


COLLECTOR = CollectorInfo(name="thermal_zone", factory=ThermalZoneCollector)
