"""Each built-in collector run on recorded host trees (tests/fixtures/hosts/):
``epyc2s`` is a two-socket AMD EPYC 72F3 KVM host (16 CPUs, 512 GiB, cpufreq,
PSI with irq, hugepages, k10temp/NVMe sensors); ``kvm2`` is a 2-vCPU KVM guest
(no cpufreq, no PSI, no hwmon)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.cpu import CpuCollector
from agent.collectors.hwmon import HwmonCollector
from agent.collectors.loadavg import LoadavgCollector, parse_loadavg
from agent.collectors.meminfo import MeminfoCollector
from agent.collectors.pressure import PressureCollector
from agent.collectors.stat import StatCollector
from agent.collectors.vmstat import VmstatCollector
from agent.features import declared_collectors
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch
from tests.helpers import batch_families, batch_raw, batch_values

HOSTS = Path(__file__).parent / "fixtures" / "hosts"
EPYC = HOSTS / "epyc2s"
KVM = HOSTS / "kvm2"
USER_HZ = os.sysconf("SC_CLK_TCK")
BUILTIN = {c.name: c.factory for c in declared_collectors()}  # this build's, by name


def make(cls, root: Path):
    return cls(CollectorContext(hostfs=HostFS(root)))


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


def run(cls, root: Path) -> Batch:
    return collect(make(cls, root))


@pytest.fixture
def epyc_copy(tmp_path: Path) -> Path:
    """A writable copy of the epyc2s tree."""
    root = tmp_path / "epyc2s"
    shutil.copytree(EPYC, root)
    return root


def test_builtin_maps_each_name_to_its_collector():
    assert {name: cls.name for name, cls in BUILTIN.items()} == {n: n for n in BUILTIN}
    assert {"cpu", "stat", "loadavg", "pressure", "meminfo", "vmstat", "hwmon", "netdev", "ipmi",
            "filesystem", "diskstats", "netstat", "uname", "textfile"} <= set(BUILTIN)


# -- cpu ----------------------------------------------------------------------
def test_cpu_seconds_per_mode_in_kernel_field_order():
    batch = run(CpuCollector, EPYC)
    raw, values = batch_raw(batch), batch_values(batch)
    # cpu1 124557698 22346 21990333 211415158 236243 647896 1435860 0 88157798 1954
    expected = {"user": 124557698, "nice": 22346, "system": 21990333, "idle": 211415158,
                "iowait": 236243, "irq": 647896, "softirq": 1435860, "steal": 0}
    for mode, ticks in expected.items():
        assert raw["node_cpu_seconds_total", ("1", mode)] == ticks
        assert values["node_cpu_seconds_total", ("1", mode)] == pytest.approx(ticks / USER_HZ)
    assert batch_families(batch)["node_cpu_seconds_total"].scale == 1 / USER_HZ
    cpus = {labels[0] for (name, labels) in raw if name == "node_cpu_seconds_total"}
    assert cpus == {str(i) for i in range(16)}  # no series for the aggregate line


def test_cpu_guest_is_separate_and_still_inside_user():
    raw = batch_raw(run(CpuCollector, EPYC))
    assert raw["node_cpu_guest_seconds_total", ("1", "user")] == 88157798
    assert raw["node_cpu_guest_seconds_total", ("1", "nice")] == 1954
    assert raw["node_cpu_seconds_total", ("1", "user")] == 124557698  # not user - guest


def _bump(line: str, deltas: list[int]) -> str:
    name, *fields = line.split()
    return " ".join([name] + [str(int(v) + d) for v, d in zip(fields, deltas + [0] * 10)])


def test_cpu_utilization_from_the_second_collection(epyc_copy: Path):
    collector = make(CpuCollector, epyc_copy)
    first = batch_values(collect(collector))
    assert not any(name.startswith("hostagent_cpu_utilization") for name, _ in first)

    stat = epyc_copy / "proc/stat"
    lines = stat.read_text().splitlines()
    # cpu0: 500 ticks pass, 350 of them idle or iowait -> 30 % busy
    lines[1] = _bump(lines[1], [100, 0, 50, 300, 50])
    # all CPUs: 1000 ticks pass, 600 idle -> 40 % busy
    lines[0] = _bump(lines[0], [400, 0, 0, 600])
    stat.write_text("\n".join(lines) + "\n")
    second = batch_values(collect(collector))

    assert second["hostagent_cpu_utilization_ratio", ("0",)] == pytest.approx(0.3)
    assert second["hostagent_cpu_utilization_all_ratio", ()] == pytest.approx(0.4)
    # cpu1..15 did not move: no division by zero, no made-up value
    assert [k for k in second if k[0] == "hostagent_cpu_utilization_ratio"] == [
        ("hostagent_cpu_utilization_ratio", ("0",))]


def test_cpu_frequency_from_cpufreq_when_present():
    values = batch_values(run(CpuCollector, EPYC))
    assert values["node_cpu_scaling_frequency_hertz", ("0",)] == 3_688_412_000
    assert values["node_cpu_scaling_frequency_hertz", ("1",)] == 3_700_000_000
    assert values["node_cpu_scaling_frequency_min_hertz", ("15",)] == 1_500_000_000
    assert values["node_cpu_scaling_frequency_max_hertz", ("15",)] == 3_700_000_000
    assert not any(name == "hostagent_cpu_frequency_hertz" for name, _ in values)
    assert values["hostagent_cpus_online", ()] == 16


def test_cpu_frequency_from_cpuinfo_without_cpufreq():
    values = batch_values(run(CpuCollector, KVM))
    assert values["hostagent_cpu_frequency_hertz", ("0",)] == pytest.approx(2445.428e6)
    assert values["hostagent_cpu_frequency_hertz", ("1",)] == pytest.approx(2445.428e6)
    assert not any(name.startswith("node_cpu_scaling") for name, _ in values)
    assert values["hostagent_cpus_online", ()] == 2
    assert batch_raw(run(CpuCollector, KVM))["node_cpu_seconds_total", ("1", "steal")] > 0


# -- stat ---------------------------------------------------------------------
def test_stat_counters_and_gauges():
    values = batch_values(run(StatCollector, EPYC))
    assert values == {
        ("node_context_switches_total", ()): 982734012377,
        ("node_intr_total", ()): 5346897419,
        ("node_forks_total", ()): 2718838,
        ("hostagent_softirqs_total", ()): 11334610193,
        ("node_procs_running", ()): 27,
        ("node_procs_blocked", ()): 1,
        ("node_boot_time_seconds", ()): 1791371220,
    }


# -- loadavg ------------------------------------------------------------------
def test_loadavg():
    assert batch_values(run(LoadavgCollector, EPYC)) == {
        ("node_load1", ()): 24.31, ("node_load5", ()): 22.87, ("node_load15", ()): 21.04,
        ("hostagent_tasks_runnable", ()): 27, ("hostagent_tasks", ()): 3412,
    }


def test_loadavg_rejects_garbage():
    with pytest.raises(ValueError):
        parse_loadavg("0.1 0.2 0.3 17 99\n")


# -- pressure -----------------------------------------------------------------
def test_pressure_totals_and_averages():
    batch = run(PressureCollector, EPYC)
    values, raw = batch_values(batch), batch_raw(batch)
    assert raw["node_pressure_cpu_waiting_seconds_total", ()] == 91837264113
    assert values["node_pressure_cpu_waiting_seconds_total", ()] == pytest.approx(91837.264113)
    assert values["node_pressure_io_stalled_seconds_total", ()] == pytest.approx(3921.77231)
    assert values["node_pressure_memory_waiting_seconds_total", ()] == pytest.approx(218.374455)
    assert values["node_pressure_irq_stalled_seconds_total", ()] == pytest.approx(1203.448817)
    assert values["hostagent_pressure_avg_ratio", ("io", "full", "60s")] == pytest.approx(0.0019)
    assert values["hostagent_pressure_avg_ratio", ("cpu", "some", "10s")] == pytest.approx(0.0231)
    # irq has only a "full" line
    assert ("hostagent_pressure_avg_ratio", ("irq", "some", "10s")) not in values
    assert len([k for k in values if k[0].startswith("node_pressure_")]) == 7


def test_pressure_skips_a_missing_resource_and_a_missing_full_line(epyc_copy: Path):
    (epyc_copy / "proc/pressure/irq").unlink()
    cpu = epyc_copy / "proc/pressure/cpu"
    cpu.write_text(cpu.read_text().splitlines()[0] + "\n")  # kernels before 5.13
    names = {name for name, _ in batch_values(run(PressureCollector, epyc_copy))}
    assert "node_pressure_irq_stalled_seconds_total" not in names
    assert "node_pressure_cpu_stalled_seconds_total" not in names
    assert "node_pressure_cpu_waiting_seconds_total" in names
    assert "node_pressure_memory_stalled_seconds_total" in names


def test_pressure_absent_is_nodata():
    with pytest.raises(NoData):
        run(PressureCollector, KVM)


# -- meminfo ------------------------------------------------------------------
def test_meminfo_fields_in_bytes_with_node_exporter_names():
    values = batch_values(run(MeminfoCollector, EPYC))
    assert values["node_memory_MemTotal_bytes", ()] == 528151776 * 1024
    assert values["node_memory_MemAvailable_bytes", ()] == 201733920 * 1024
    assert values["node_memory_Active_anon_bytes", ()] == 139182880 * 1024
    assert values["node_memory_Inactive_file_bytes", ()] == 93846992 * 1024
    assert values["node_memory_HugePages_Total", ()] == 65536  # a count, no _bytes
    assert values["node_memory_HugePages_Rsvd", ()] == 1024
    assert values["node_memory_Hugepagesize_bytes", ()] == 2 * 1024 * 1024
    meminfo_series = [k for k in values if k[0].startswith("node_memory_")]
    assert len(meminfo_series) == 58  # one per line of the file


def test_meminfo_reuses_its_families_across_runs():
    collector = make(MeminfoCollector, EPYC)
    first, second = collect(collector), collect(collector)
    assert all(a[0] is b[0] for a, b in zip(first.keys, second.keys))


def test_hugepages_per_size():
    values = batch_values(run(MeminfoCollector, EPYC))
    assert values["hostagent_hugepages_configured", ("2097152",)] == 65536
    assert values["hostagent_hugepages_free", ("2097152",)] == 12288
    assert values["hostagent_hugepages_reserved", ("2097152",)] == 1024
    assert values["hostagent_hugepages_configured", ("1073741824",)] == 16
    assert values["hostagent_hugepages_free", ("1073741824",)] == 4
    assert values["hostagent_hugepages_surplus", ("1073741824",)] == 0


# -- vmstat -------------------------------------------------------------------
def test_vmstat_counters():
    assert batch_values(run(VmstatCollector, EPYC)) == {
        ("node_vmstat_pgpgin", ()): 4049127467,
        ("node_vmstat_pgpgout", ()): 2658513024,
        ("node_vmstat_pswpin", ()): 24576,
        ("node_vmstat_pswpout", ()): 98304,
        ("node_vmstat_pgfault", ()): 918273645512,
        ("node_vmstat_pgmajfault", ()): 1183927,
        ("node_vmstat_oom_kill", ()): 3,
    }


def test_vmstat_field_missing_on_an_old_kernel(epyc_copy: Path):
    vmstat = epyc_copy / "proc/vmstat"
    vmstat.write_text("".join(line for line in vmstat.read_text().splitlines(keepends=True)
                              if not line.startswith("oom_kill ")))
    names = {name for name, _ in batch_values(run(VmstatCollector, epyc_copy))}
    assert "node_vmstat_oom_kill" not in names
    assert "node_vmstat_pgfault" in names


# -- hwmon --------------------------------------------------------------------
def test_hwmon_temperatures_without_device_links():
    values = batch_values(run(HwmonCollector, EPYC))
    assert values["node_hwmon_temp_celsius", ("hwmon0", "temp1")] == 58.25
    assert values["node_hwmon_temp_celsius", ("hwmon1", "temp1")] == 61.375
    assert values["node_hwmon_sensor_label", ("hwmon1", "temp3", "Tccd1")] == 1
    assert values["node_hwmon_chip_names", ("hwmon0", "k10temp")] == 1
    assert values["node_hwmon_chip_names", ("hwmon2", "nvme")] == 1
    assert values["node_hwmon_temp_crit_celsius", ("hwmon2", "temp1")] == 84.85
    assert values["node_hwmon_temp_max_celsius", ("hwmon2", "temp1")] == 81.85
    assert values["node_hwmon_sensor_label", ("hwmon2", "temp2", "Sensor 1")] == 1
    assert ("node_hwmon_temp_crit_celsius", ("hwmon0", "temp1")) not in values
    # the power meter has no temperature sensor
    assert not any(labels[0] == "hwmon3" for _, labels in values)


@pytest.mark.parametrize("device, chip", [
    ("pci0000:00/0000:00:18.3", "pci0000:00_0000:00:18_3"),
    ("platform/coretemp.0", "platform_coretemp_0"),
])
def test_hwmon_chip_label_from_the_device_link(tmp_path: Path, device: str, chip: str):
    device_dir = tmp_path / "sys/devices" / device
    hwmon = device_dir / "hwmon/hwmon4"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("k10temp\n")
    (hwmon / "temp1_input").write_text("47125\n")
    (hwmon / "device").symlink_to(Path("../../..", device_dir.name))  # as sysfs links it
    (tmp_path / "sys/class/hwmon").mkdir(parents=True)
    (tmp_path / "sys/class/hwmon/hwmon4").symlink_to(
        Path("../../devices", device, "hwmon/hwmon4"))
    values = batch_values(run(HwmonCollector, tmp_path))
    assert values == {("node_hwmon_chip_names", (chip, "k10temp")): 1,
                      ("node_hwmon_temp_celsius", (chip, "temp1")): 47.125}


def test_hwmon_absent_is_nodata(tmp_path: Path):
    with pytest.raises(NoData):
        run(HwmonCollector, KVM)
    (tmp_path / "sys/class/hwmon/hwmon0").mkdir(parents=True)  # a chip without temperatures
    (tmp_path / "sys/class/hwmon/hwmon0/fan1_input").write_text("1200\n")
    with pytest.raises(NoData):
        run(HwmonCollector, tmp_path)
