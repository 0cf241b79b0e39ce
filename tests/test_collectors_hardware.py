"""The hardware collectors (edac, rapl, thermal_zone, cpufreq,
powersupplyclass) on the ``vm-sys`` tree, whose files for them are written in
the kernel's documented formats (see its README): readers and parsers with
exact values, collectors end to end through HostFS, NoData on an empty tree."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.cpufreq import CpufreqCollector, parse_cpu_list, read_cpufreq
from agent.collectors.edac import EdacCollector, read_controller
from agent.collectors.powersupplyclass import (PowerSupplyClassCollector, parse_value,
                                               read_supply)
from agent.collectors.rapl import RaplCollector, Unwrapper, list_zones, metric_name, split_name
from agent.collectors.thermal_zone import (ThermalZoneCollector, read_cooling_device, read_zone)
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch
from tests.helpers import batch_families, batch_raw, batch_values

VM = Path(__file__).parent / "fixtures" / "hosts" / "vm-sys"
FS = HostFS(VM)


def ctx(root: Path, **options) -> CollectorContext:
    return CollectorContext(hostfs=HostFS(root), options=options)


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


@pytest.fixture
def vm_copy(tmp_path: Path) -> Path:
    root = tmp_path / "vm-sys"
    shutil.copytree(VM, root, symlinks=True)
    return root


# -- edac ---------------------------------------------------------------------
def test_edac_reader_orders_csrows_numerically_and_keeps_noinfo_as_unknown():
    mc0 = read_controller(FS, "mc0")
    assert (mc0.controller, mc0.ce, mc0.ue) == ("0", 17, 0)
    assert mc0.csrows == [("unknown", 2, 0), ("0", 0, 0), ("1", 15, 0), ("2", 0, 0), ("10", 0, 0)]


def test_edac_collector():
    raw = batch_raw(collect(EdacCollector(ctx(VM))))
    assert raw[("node_edac_correctable_errors_total", ("0",))] == 17
    assert raw[("node_edac_uncorrectable_errors_total", ("1",))] == 1
    assert raw[("node_edac_csrow_correctable_errors_total", ("0", "1"))] == 15
    assert raw[("node_edac_csrow_correctable_errors_total", ("0", "unknown"))] == 2
    assert raw[("node_edac_csrow_uncorrectable_errors_total", ("1", "0"))] == 1
    assert len(raw) == 20  # 2 controllers x 2 + (4 + 1 unknown + 2 + 1 unknown) rows x 2


# -- rapl ---------------------------------------------------------------------
def test_rapl_zone_names_and_indexes_as_node_exporter_makes_them():
    assert split_name("package-1") == ("package", 1)
    assert split_name("dram") == ("dram", None)
    assert split_name("package-x") == ("package-x", None)
    assert metric_name("package") == "node_rapl_package_joules_total"
    assert metric_name("weird name-") == "node_rapl_weird_name_joules_total"
    assert [(z.name, z.index, z.dir) for z in list_zones(FS)] == [
        ("package", 0, "intel-rapl:0"), ("dram", 0, "intel-rapl:0:0"),
        ("package", 1, "intel-rapl:1"), ("dram", 1, "intel-rapl:1:0")]


def test_rapl_collector_in_joules_with_index_and_path():
    batch = collect(RaplCollector(ctx(VM)))
    raw = batch_raw(batch)
    assert raw == {
        ("node_rapl_package_joules_total", ("0", "/sys/class/powercap/intel-rapl:0")): 186734552186,
        ("node_rapl_dram_joules_total", ("0", "/sys/class/powercap/intel-rapl:0:0")): 41029688311,
        ("node_rapl_package_joules_total", ("1", "/sys/class/powercap/intel-rapl:1")): 9371552007,
        ("node_rapl_dram_joules_total", ("1", "/sys/class/powercap/intel-rapl:1:0")): 38817231545,
    }
    assert batch_families(batch)["node_rapl_package_joules_total"].scale == 1e-6
    values = batch_values(batch)
    assert values[("node_rapl_package_joules_total", ("0", "/sys/class/powercap/intel-rapl:0"))] \
        == pytest.approx(186734.552186)


def test_rapl_wrap_keeps_the_counter_monotonic(vm_copy: Path):
    energy = vm_copy / "sys/class/powercap/intel-rapl:0/energy_uj"
    key = ("node_rapl_package_joules_total", ("0", "/sys/class/powercap/intel-rapl:0"))
    collector = RaplCollector(ctx(vm_copy))
    energy.write_text("262143000000\n")  # just below max_energy_range_uj
    assert batch_raw(collect(collector))[key] == 262143000000
    energy.write_text("1000000\n")  # wrapped
    assert batch_raw(collect(collector))[key] == 262143328850 + 1000000
    energy.write_text("5000000\n")
    assert batch_raw(collect(collector))[key] == 262143328850 + 5000000
    fresh = RaplCollector(ctx(vm_copy))  # state is per collector instance (agent run)
    assert batch_raw(collect(fresh))[key] == 5000000


def test_unwrapper_adds_the_range_at_each_wrap():
    unwrap = Unwrapper()
    assert [unwrap(r, 100) for r in (90, 95, 5, 50, 10)] == [90, 95, 105, 150, 210]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file")
def test_rapl_root_only_energy_is_nodata(vm_copy: Path):
    (vm_copy / "sys/class/powercap/intel-rapl:0/energy_uj").chmod(0)
    with pytest.raises(NoData, match="root"):
        collect(RaplCollector(ctx(vm_copy)))


def test_rapl_permission_error_is_nodata_with_the_reason(vm_copy: Path, monkeypatch):
    real = HostFS.read_text

    def refuse(self, rel):
        if rel.endswith("/energy_uj"):
            raise PermissionError(13, "Permission denied")
        return real(self, rel)
    monkeypatch.setattr(HostFS, "read_text", refuse)
    with pytest.raises(NoData, match="root only"):
        collect(RaplCollector(ctx(vm_copy)))


# -- thermal_zone -------------------------------------------------------------
def test_thermal_readers():
    assert read_zone(FS, "thermal_zone1", "1") == ("1", "x86_pkg_temp", 48.0)
    assert read_zone(FS, "thermal_zone2", "2") is None  # no readable temp
    assert read_zone(FS, "thermal_zone3", "3") is None  # mode disabled
    assert read_cooling_device(FS, "cooling_device1", "1") == ("1", "intel_powerclamp", -1, 50)


def test_thermal_zone_collector():
    assert batch_values(collect(ThermalZoneCollector(ctx(VM)))) == {
        ("node_thermal_zone_temp", ("0", "acpitz")): 27.8,
        ("node_thermal_zone_temp", ("1", "x86_pkg_temp")): 48.0,
        ("node_thermal_zone_temp", ("10", "INT3400 Thermal")): 20.0,
        ("node_cooling_device_cur_state", ("0", "Processor")): 0,
        ("node_cooling_device_max_state", ("0", "Processor")): 3,
        ("node_cooling_device_cur_state", ("1", "intel_powerclamp")): -1,
        ("node_cooling_device_max_state", ("1", "intel_powerclamp")): 50,
        ("node_cooling_device_cur_state", ("2", "Fan")): 1,
        ("node_cooling_device_max_state", ("2", "Fan")): 1,
    }


# -- cpufreq ------------------------------------------------------------------
def test_cpu_list_parser():
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("\n") == set()


def test_cpufreq_reader():
    cpu2 = read_cpufreq(FS, "2")
    assert cpu2.cur_hz is None  # root-only cpuinfo_cur_freq not readable
    assert (cpu2.min_hz, cpu2.max_hz, cpu2.governor) == (1.5e9, 3.5e9, "ondemand")
    assert cpu2.available_governors == (
        "conservative", "ondemand", "userspace", "powersave", "performance", "schedutil")


def test_cpufreq_collector_skips_offline_cpus_and_leaves_scaling_to_cpu():
    values = batch_values(collect(CpufreqCollector(ctx(VM))))
    assert values[("node_cpu_frequency_hertz", ("0",))] == 2.2e9
    assert values[("node_cpu_frequency_hertz", ("1",))] == 3.4e9
    assert ("node_cpu_frequency_hertz", ("2",)) not in values
    assert values[("node_cpu_frequency_min_hertz", ("2",))] == 1.5e9
    assert values[("node_cpu_frequency_max_hertz", ("2",))] == 3.5e9
    governors = {labels: v for (name, labels), v in values.items()
                 if name == "node_cpu_scaling_governor"}
    assert {labels for labels, v in governors.items() if v == 1} == {
        ("0", "performance"), ("1", "schedutil"), ("2", "ondemand")}
    assert len(governors) == 18
    assert not any(labels[0] == "3" for _, labels in values)  # offline
    assert not any(name.startswith("node_cpu_scaling_frequency") for name, _ in values)


def test_cpufreq_governor_outside_the_available_list(vm_copy: Path):
    (vm_copy / "sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors").unlink()
    values = batch_values(collect(CpufreqCollector(ctx(vm_copy))))
    assert [labels for (name, labels), v in values.items()
            if name == "node_cpu_scaling_governor" and labels[0] == "0"] == [("0", "performance")]


# -- powersupplyclass ---------------------------------------------------------
def test_power_supply_values_in_node_exporters_units():
    assert parse_value("energy_now", "38210000\n") == 38.21
    assert parse_value("temp", "293") == 29.3
    assert parse_value("capacity", "76") == 76
    assert parse_value("voltage_now", "not a number") is None
    bat = read_supply(FS, "BAT0")
    assert bat.values["voltage_now"] == 12.132 and bat.values["cycle_count"] == 187
    assert "alarm" not in bat.values and "uevent" not in bat.info  # not node_exporter's
    assert bat.info["status"] == "Discharging" and bat.info["type"] == "Battery"


def test_power_supply_collector():
    values = batch_values(collect(PowerSupplyClassCollector(ctx(VM))))
    assert values[("node_power_supply_online", ("AC",))] == 1
    assert values[("node_power_supply_energy_watthour", ("BAT0",))] == 38.21
    assert values[("node_power_supply_energy_full_design", ("BAT0",))] == 57.0
    assert values[("node_power_supply_power_watt", ("BAT0",))] == 8.512
    assert values[("node_power_supply_voltage_volt", ("BAT0",))] == 12.132
    assert values[("node_power_supply_cyclecount", ("BAT0",))] == 187
    assert values[("node_power_supply_capacity", ("BAT0",))] == 76
    assert values[("node_power_supply_temp_celsius", ("BAT0",))] == 29.3
    assert values[("node_power_supply_info", ("AC", "", "", "", "", "", "", "", "", "Mains",
                                              "", ""))] == 1
    assert values[("node_power_supply_info", (
        "BAT0", "Normal", "", "", "SMP", "5B10W13975", "1234", "Discharging", "Li-ion",
        "Battery", "", ""))] == 1
    assert len(values) == 13


def test_power_supply_ignored_supplies_option():
    values = batch_values(collect(PowerSupplyClassCollector(ctx(VM, ignored_supplies="^BAT"))))
    assert {labels[0] for _, labels in values} == {"AC"}
    with pytest.raises(NoData):
        collect(PowerSupplyClassCollector(ctx(VM, ignored_supplies=".")))


# -- absent -------------------------------------------------------------------
@pytest.mark.parametrize("cls", [EdacCollector, RaplCollector, ThermalZoneCollector,
                                 CpufreqCollector, PowerSupplyClassCollector])
def test_nodata_on_an_empty_tree(cls, tmp_path: Path):
    with pytest.raises(NoData):
        collect(cls(ctx(tmp_path)))
