"""Hardware CPU frequency limits and the cpufreq governor, per online CPU.

Source: ``/sys/devices/system/cpu/cpuN/cpufreq/`` (Documentation/admin-guide/
pm/cpufreq.rst), frequencies in kHz: ``cpuinfo_cur_freq`` (read from the
hardware; often root-only), ``cpuinfo_min_freq``, ``cpuinfo_max_freq``,
``scaling_governor`` and ``scaling_available_governors`` (space-separated).
CPUs listed in ``/sys/devices/system/cpu/offline`` (``2,4-5``) are skipped.

The ``scaling_*_freq`` values node_exporter's cpufreq collector also serves
(``node_cpu_scaling_frequency*_hertz``) come from the ``cpu`` collector here
(:mod:`agent.collectors.cpu`), so they are not repeated.  A governor that is
not in ``scaling_available_governors`` still gets its series (value 1).  No
CPU with cpufreq (most VMs) is :class:`NoData`.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
CPU_DIR = "sys/devices/system/cpu"
_CPU = ("cpu",)
FREQUENCY = FamilyDesc("node_cpu_frequency_hertz", G,
                       "Current CPU thread frequency read from the hardware (cpuinfo_cur_freq)",
                       "hertz", _CPU)
FREQUENCY_MIN = FamilyDesc("node_cpu_frequency_min_hertz", G,
                           "Minimum CPU thread frequency (cpuinfo_min_freq)", "hertz", _CPU)
FREQUENCY_MAX = FamilyDesc("node_cpu_frequency_max_hertz", G,
                           "Maximum CPU thread frequency (cpuinfo_max_freq)", "hertz", _CPU)
GOVERNOR = FamilyDesc("node_cpu_scaling_governor", G,
                      "1 for the CPU's current cpufreq governor, 0 for the other available ones",
                      label_names=("cpu", "governor"))

_CPU_ENTRY = re.compile(r"^cpu(\d+)$")


class CpuFreq(NamedTuple):
    cpu: str
    cur_hz: float | None
    min_hz: float | None
    max_hz: float | None
    governor: str | None
    available_governors: tuple[str, ...]


def parse_cpu_list(text: str) -> set[int]:
    """A kernel CPU list: ``0-3,8,10-11`` -> {0, 1, 2, 3, 8, 10, 11}; ``""`` -> set()."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        out.update(range(int(low), int(high) + 1) if sep else (int(low),))
    return out


def _hz(fs: HostFS, rel: str) -> float | None:
    khz = fs.read_int(rel)
    return None if khz is None else khz * 1000.0


def read_cpufreq(fs: HostFS, cpu: str) -> CpuFreq:
    base = f"{CPU_DIR}/cpu{cpu}/cpufreq"
    available = fs.read_value(f"{base}/scaling_available_governors") or ""
    return CpuFreq(cpu, _hz(fs, f"{base}/cpuinfo_cur_freq"), _hz(fs, f"{base}/cpuinfo_min_freq"),
                   _hz(fs, f"{base}/cpuinfo_max_freq"),
                   fs.read_value(f"{base}/scaling_governor") or None, tuple(available.split()))


class CpufreqCollector:
    name = "cpufreq"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        offline = parse_cpu_list(self._fs.read_value(f"{CPU_DIR}/offline") or "")
        cpus = sorted((int(m.group(1)) for e in self._fs.listdir(CPU_DIR)
                       if (m := _CPU_ENTRY.match(e))))
        present = [str(n) for n in cpus
                   if n not in offline and self._fs.exists(f"{CPU_DIR}/cpu{n}/cpufreq")]
        if not present:
            raise NoData("no CPU with cpufreq (/sys/devices/system/cpu/cpu*/cpufreq)")
        for cpu in present:
            freq = read_cpufreq(self._fs, cpu)
            for family, value in ((FREQUENCY, freq.cur_hz), (FREQUENCY_MIN, freq.min_hz),
                                  (FREQUENCY_MAX, freq.max_hz)):
                if value is not None:
                    batch.gauge(family, value, cpu)
            if freq.governor:
                governors = dict.fromkeys((*freq.available_governors, freq.governor))
                for governor in governors:
                    batch.gauge(GOVERNOR, 1 if governor == freq.governor else 0, cpu, governor)


COLLECTOR = CollectorInfo(name="cpufreq", factory=CpufreqCollector)
