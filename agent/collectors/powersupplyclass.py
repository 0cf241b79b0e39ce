"""Batteries, mains adapters and UPSes the kernel knows: ``/sys/class/power_supply/``.

Source: one directory per supply (``BAT0``, ``AC``, ``ucsi-source-psy-...``)
with one attribute per file (Documentation/ABI/testing/sysfs-class-power):
integers in microamperes, microvolts, microwatts, microwatt-hours and
microampere-hours, temperatures in tenths of a degree Celsius, times in
seconds, and text attributes (``status``, ``health``, ``technology`` ...).

Names are node_exporter's powersupplyclass collector's, including its
scaling: every micro-unit attribute is divided by 1e6 (``energy_now`` ->
``node_power_supply_energy_watthour``, ``current_now`` ->
``node_power_supply_current_ampere``), temperatures by 10.  The text
attributes are labels of ``node_power_supply_info``, empty when the supply
has no such file (Prometheus treats an empty label as absent, so the series
match node_exporter's).  A value that is not an integer is skipped.  Supplies
whose name matches the ``ignored_supplies`` option are left out.  No supply
(most servers and VMs) is :class:`NoData`.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.config_values import regex
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
POWER_SUPPLY = "sys/class/power_supply"
_PS = ("power_supply",)


def _family(metric: str, attr: str, unit: str, divisor: float) -> FamilyDesc:
    scaled = f", divided by {divisor:,.0f}" if divisor != 1 else ""
    return FamilyDesc(f"node_power_supply_{metric}", G,
                      f"Power supply attribute {attr}{scaled}", unit, _PS)


# (sysfs attribute, node_exporter's metric suffix, divisor); unit from the suffix
_NUMERIC = (
    ("authentic", "authentic", 1), ("calibrate", "calibrate", 1),
    ("capacity", "capacity", 1), ("capacity_alert_max", "capacity_alert_max", 1),
    ("capacity_alert_min", "capacity_alert_min", 1), ("cycle_count", "cyclecount", 1),
    ("online", "online", 1), ("present", "present", 1),
    ("time_to_empty_now", "time_to_empty_seconds", 1),
    ("time_to_full_now", "time_to_full_seconds", 1),
    ("current_boot", "current_boot", 1e6), ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6), ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6), ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6), ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6), ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6), ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6), ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6), ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6), ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    ("constant_charge_current_max", "constant_charge_current_max", 1e6),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    ("constant_charge_voltage_max", "constant_charge_voltage_max", 1e6),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6), ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10), ("temp_alert_max", "temp_alert_max_celsius", 10),
    ("temp_alert_min", "temp_alert_min_celsius", 10), ("temp_ambient", "temp_ambient_celsius", 10),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10),
    ("temp_max", "temp_max_celsius", 10), ("temp_min", "temp_min_celsius", 10),
)
_UNITS = (("_seconds", "seconds"), ("_celsius", "celsius"), ("_ampere", "amperes"),
          ("_volt", "volts"), ("_watthour", "watthours"), ("_watt", "watts"))


def _unit(metric: str) -> str:
    if metric == "charge_ampere":  # ampere-hours, despite the name
        return ""
    return next((unit for suffix, unit in _UNITS if metric.endswith(suffix)), "")


# sysfs attribute -> (family, divisor)
NUMERIC: dict[str, tuple[FamilyDesc, float]] = {
    attr: (_family(metric, attr, _unit(metric), div), div)
    for attr, metric, div in _NUMERIC
}
INFO_LABELS = ("power_supply", "capacity_level", "charge_type", "health", "manufacturer",
               "model_name", "serial_number", "status", "technology", "type", "usb_type", "scope")
INFO = FamilyDesc("node_power_supply_info", G,
                  "Text attributes of the power supply as labels; value is always 1",
                  label_names=INFO_LABELS)


class PowerSupply(NamedTuple):
    name: str
    values: dict[str, float]  # sysfs attribute -> value in node_exporter's unit
    info: dict[str, str]  # text attribute -> value


def parse_value(attr: str, text: str) -> float | None:
    """One numeric attribute in node_exporter's unit; None unless an integer."""
    text = text.strip()
    try:
        raw = int(text, 0)
    except ValueError:
        return None
    return raw / NUMERIC[attr][1]


def read_supply(fs: HostFS, name: str) -> PowerSupply:
    """Attributes that are absent or cannot be read (ENODATA from a
    battery's fuel gauge, EINVAL) are left out."""
    base = f"{POWER_SUPPLY}/{name}"
    values: dict[str, float] = {}
    info: dict[str, str] = {}
    for attr in fs.listdir(base):
        if attr in NUMERIC or attr in INFO_LABELS:
            path = fs.path(f"{base}/{attr}")
            if path.is_symlink() or not path.is_file():
                continue
            text = fs.read_value(f"{base}/{attr}")
            if text is None:
                continue
            if attr in NUMERIC:
                if (value := parse_value(attr, text)) is not None:
                    values[attr] = value
            else:
                info[attr] = text
    return PowerSupply(name, values, info)


class PowerSupplyClassCollector:
    name = "powersupplyclass"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        ignored = ctx.options.get("ignored_supplies", "^$")
        self._ignored = ignored if isinstance(ignored, re.Pattern) else re.compile(ignored)

    def collect(self, batch: Batch) -> None:
        names = [n for n in self._fs.listdir(POWER_SUPPLY) if not self._ignored.search(n)]
        if not names:
            raise NoData("no power supply in /sys/class/power_supply")
        for name in names:
            supply = read_supply(self._fs, name)
            for attr, value in supply.values.items():
                batch.gauge(NUMERIC[attr][0], value, name)
            labels = {**supply.info, "power_supply": name}
            batch.gauge(INFO, 1, *(labels.get(label, "") for label in INFO_LABELS))


COLLECTOR = CollectorInfo(name="powersupplyclass", factory=PowerSupplyClassCollector,
                          options={"ignored_supplies": regex})
