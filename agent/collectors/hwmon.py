"""Temperatures from the kernel's hardware monitors, ``/sys/class/hwmon/hwmonN/``.

Files per sensor (millidegrees Celsius): ``tempK_input``, optionally
``tempK_crit``, ``tempK_max`` and a ``tempK_label`` such as ``Tctl``.  Old
drivers keep them under ``hwmonN/device/`` instead.

The ``chip`` label is node_exporter's: built from where the ``device`` link
points, ``.../pci0000:00/0000:00:18.3`` -> ``pci0000:00_0000:00:18_3``,
``.../platform/coretemp.0`` -> ``platform_coretemp_0``.  Without a device link
it is the ``hwmonN`` directory name (node_exporter would take the ``name``
file first, which is not unique on a two-socket host; the ``name`` is in
``node_hwmon_chip_names`` either way).
"""
from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
HWMON = "sys/class/hwmon"
_SENSOR = ("chip", "sensor")
TEMP = FamilyDesc("node_hwmon_temp_celsius", G, "Hardware monitor for temperature (input)",
                  "celsius", _SENSOR)
TEMP_CRIT = FamilyDesc("node_hwmon_temp_crit_celsius", G,
                       "Hardware monitor for temperature (crit)", "celsius", _SENSOR)
TEMP_MAX = FamilyDesc("node_hwmon_temp_max_celsius", G, "Hardware monitor for temperature (max)",
                      "celsius", _SENSOR)
CHIP_NAMES = FamilyDesc("node_hwmon_chip_names", G,
                        "Annotation metric for human-readable chip names",
                        label_names=("chip", "chip_name"))
SENSOR_LABEL = FamilyDesc("node_hwmon_sensor_label", G, "Label for given chip and sensor",
                          label_names=("chip", "sensor", "label"))

_TEMP_INPUT = re.compile(r"^(temp\d+)_input$")
_INVALID = re.compile(r"[^a-z0-9:_]")


class TempSensor(NamedTuple):
    sensor: str  # "temp1"
    celsius: float
    crit: float | None
    max: float | None
    label: str | None


class Chip(NamedTuple):
    hwmon_dir: str  # "hwmon0"
    chip: str  # label value, see module docstring
    name: str | None  # cleaned content of the ``name`` file
    sensors: list[TempSensor]


def clean_name(text: str) -> str:
    """node_exporter's cleanMetricName: lower case, ``[^a-z0-9:_]`` -> ``_``, trimmed."""
    return _INVALID.sub("_", text.lower()).strip("_")


def chip_label(hwmon_dir: str, device_target: str | None) -> str:
    """The ``chip`` label from the resolved ``device`` link, else the directory name."""
    if device_target:
        path = PurePosixPath(device_target)
        dev_name, dev_type = clean_name(path.name), clean_name(path.parent.name)
        if dev_name:
            return f"{dev_type}_{dev_name}" if dev_type else dev_name
    return clean_name(hwmon_dir) or hwmon_dir


def _millidegrees(fs: HostFS, rel: str) -> float | None:
    value = fs.read_int(rel)
    return None if value is None else value / 1000.0


def read_chip(fs: HostFS, hwmon_dir: str) -> Chip:
    base = f"{HWMON}/{hwmon_dir}"
    device = fs.path(f"{base}/device")
    target = os.path.realpath(device) if device.is_symlink() else None
    sensor_dir = base
    inputs = [m.group(1) for e in fs.listdir(base) if (m := _TEMP_INPUT.match(e))]
    if not inputs:  # pre-3.x drivers keep the attributes on the device
        sensor_dir = f"{base}/device"
        inputs = [m.group(1) for e in fs.listdir(sensor_dir) if (m := _TEMP_INPUT.match(e))]
    sensors = []
    for sensor in sorted(inputs, key=lambda s: int(s[4:])):
        celsius = _millidegrees(fs, f"{sensor_dir}/{sensor}_input")
        if celsius is None:  # unreadable (EIO/ENODATA while the sensor is offline)
            continue
        sensors.append(TempSensor(sensor, celsius,
                                  _millidegrees(fs, f"{sensor_dir}/{sensor}_crit"),
                                  _millidegrees(fs, f"{sensor_dir}/{sensor}_max"),
                                  fs.read_value(f"{sensor_dir}/{sensor}_label") or None))
    raw_name = fs.read_value(f"{base}/name") or fs.read_value(f"{sensor_dir}/name")
    return Chip(hwmon_dir, chip_label(hwmon_dir, target),
                clean_name(raw_name) if raw_name else None, sensors)


class HwmonCollector:
    name = "hwmon"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        chips = [c for c in (read_chip(self._fs, d) for d in self._fs.listdir(HWMON)) if c.sensors]
        if not chips:
            raise NoData("no hwmon chip with a temperature sensor")
        used: set[str] = set()
        for chip in chips:
            label = chip.chip
            if label in used:  # a second hwmonN under the same device
                label = f"{label}_{clean_name(chip.hwmon_dir)}"
            used.add(label)
            if chip.name:
                batch.gauge(CHIP_NAMES, 1, label, chip.name)
            for s in chip.sensors:
                batch.gauge(TEMP, s.celsius, label, s.sensor)
                if s.crit is not None:
                    batch.gauge(TEMP_CRIT, s.crit, label, s.sensor)
                if s.max is not None:
                    batch.gauge(TEMP_MAX, s.max, label, s.sensor)
                if s.label is not None:
                    batch.gauge(SENSOR_LABEL, 1, label, s.sensor, s.label)


COLLECTOR = CollectorInfo(name="hwmon", factory=HwmonCollector)
