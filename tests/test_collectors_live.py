"""The built-in collectors on this machine's real /proc and /sys, checked
against independent reads (a fresh /proc/stat, psutil, os.getloadavg)."""
from __future__ import annotations

import glob
import os
import time

import psutil
import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.cpu import CpuCollector
from agent.collectors.loadavg import LoadavgCollector
from agent.collectors.meminfo import MeminfoCollector
from agent.features import declared_collectors
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch
from tests.helpers import batch_raw, batch_values

HOST = CollectorContext(hostfs=HostFS("/"))
BUILTIN = {c.name: c.factory for c in declared_collectors()}  # this build's, by name


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


def cpu0_user_ticks() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu0 "):
                return int(line.split()[1])
    raise AssertionError("no cpu0 line in /proc/stat")


def test_cpu0_user_ticks_match_proc_stat():
    before = cpu0_user_ticks()
    raw = batch_raw(collect(CpuCollector(HOST)))
    after = cpu0_user_ticks()
    assert before <= raw["node_cpu_seconds_total", ("0", "user")] <= after


def test_cpu_utilization_and_online_count():
    collector = CpuCollector(HOST)
    collect(collector)
    time.sleep(0.2)  # every online CPU accrues ticks, busy or idle
    values = batch_values(collect(collector))
    online = psutil.cpu_count(logical=True)
    assert values["hostagent_cpus_online", ()] == online
    ratios = {labels: v for (name, labels), v in values.items()
              if name == "hostagent_cpu_utilization_ratio"}
    assert len(ratios) == online
    assert all(0.0 <= r <= 1.0 for r in ratios.values())
    assert 0.0 <= values["hostagent_cpu_utilization_all_ratio", ()] <= 1.0


def test_meminfo_total_matches_psutil():
    values = batch_values(collect(MeminfoCollector(HOST)))
    assert values["node_memory_MemTotal_bytes", ()] == psutil.virtual_memory().total


def test_loadavg_matches_os():
    values = batch_values(collect(LoadavgCollector(HOST)))
    load1, load5, load15 = os.getloadavg()
    assert values["node_load1", ()] == pytest.approx(load1, abs=0.5)
    assert values["node_load15", ()] == pytest.approx(load15, abs=0.5)


def _any(*patterns: str) -> bool:
    return any(glob.glob(p) for p in patterns)


def _mdstat_has_arrays() -> bool:
    try:
        with open("/proc/mdstat") as f:
            return any(line.startswith("md") for line in f)
    except OSError:
        return False


def _expected_present(name: str) -> bool:
    """What this host has, read independently of the collectors."""
    return {
        "ipmi": False,  # no [[bmc.targets]] in a bare context: absent, not failing
        "gpu": False,  # built without the gpu feature's hub: absent, not failing
        "flows": False,  # no [sampling] interfaces in a bare context: no hub, absent, not failing
        "textfile": True,  # no directory configured: node_textfile_scrape_error 0 only
        "pressure": os.path.isdir("/proc/pressure"),
        "hwmon": _any("/sys/class/hwmon/hwmon*/temp*_input", "/sys/class/hwmon/hwmon*/device/temp*_input"),
        "os": _any("/etc/os-release", "/usr/lib/os-release"),
        "edac": _any("/sys/devices/system/edac/mc/mc[0-9]*"),
        "rapl": _any("/sys/class/powercap/*/energy_uj") and all(
            os.access(p, os.R_OK) for p in glob.glob("/sys/class/powercap/*/energy_uj")),
        "thermal_zone": _any("/sys/class/thermal/thermal_zone[0-9]*", "/sys/class/thermal/cooling_device[0-9]*"),
        "cpufreq": _any("/sys/devices/system/cpu/cpu[0-9]*/cpufreq"),
        "schedstat": os.path.exists("/proc/schedstat"),
        "powersupplyclass": _any("/sys/class/power_supply/*"),
        "mdadm": _mdstat_has_arrays(),
        "nvme": _any("/sys/class/nvme/*"),
        "infiniband": _any("/sys/class/infiniband/*"),
        "bonding": os.path.exists("/sys/class/net/bonding_masters")
        and bool(open("/sys/class/net/bonding_masters").read().split()),
        "conntrack": os.path.exists("/proc/sys/net/netfilter/nf_conntrack_count"),
    }.get(name, True)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_collector_yields_samples_or_nodata(name: str):
    collector = BUILTIN[name](HOST)
    assert collector.name == name
    if _expected_present(name):
        batch = collect(collector)
        assert len(batch) > 0
        batch_values(batch)  # fails on a duplicate series
    else:
        with pytest.raises(NoData):
            collect(collector)
