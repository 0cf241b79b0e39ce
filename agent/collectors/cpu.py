"""CPU time, utilisation and frequency, per logical CPU.

Sources: ``/proc/stat`` (per-CPU tick counters, parsed by
:mod:`agent.collectors.procstat`), ``/sys/devices/system/cpu/cpuN/cpufreq/``
(cpufreq's ``scaling_*_freq``, kHz), ``/proc/cpuinfo`` (``cpu MHz``, only for
CPUs without cpufreq, as in most VMs).

As in node_exporter, ``mode="user"`` includes guest time and ``mode="nice"``
includes guest_nice time (the kernel counts them there);
``node_cpu_guest_seconds_total`` shows the guest part on its own.
"""
from __future__ import annotations

import os

from agent.collectors.procstat import CpuTimes, ProcStat, parse_proc_stat
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G, C = MetricType.GAUGE, MetricType.COUNTER
USER_HZ = os.sysconf("SC_CLK_TCK")
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

SECONDS = FamilyDesc("node_cpu_seconds_total", C, "Seconds the CPUs spent in each mode",
                     "seconds", ("cpu", "mode"), scale=1 / USER_HZ)
GUEST = FamilyDesc("node_cpu_guest_seconds_total", C,
                   "Seconds the CPUs spent running guests (also counted in mode user/nice "
                   "of node_cpu_seconds_total)",
                   "seconds", ("cpu", "mode"), scale=1 / USER_HZ)
UTILIZATION = FamilyDesc("hostagent_cpu_utilization_ratio", G,
                         "Busy share of the CPU (not idle, not iowait) since the previous "
                         "collection", "ratio", ("cpu",))
UTILIZATION_ALL = FamilyDesc("hostagent_cpu_utilization_all_ratio", G,
                             "Busy share of all CPUs together since the previous collection",
                             "ratio")
SCALING_FREQ = FamilyDesc("node_cpu_scaling_frequency_hertz", G,
                          "Current scaled CPU frequency (cpufreq scaling_cur_freq)", "hertz",
                          ("cpu",))
SCALING_MIN = FamilyDesc("node_cpu_scaling_frequency_min_hertz", G,
                         "Minimum scaled CPU frequency (cpufreq scaling_min_freq)", "hertz",
                         ("cpu",))
SCALING_MAX = FamilyDesc("node_cpu_scaling_frequency_max_hertz", G,
                         "Maximum scaled CPU frequency (cpufreq scaling_max_freq)", "hertz",
                         ("cpu",))
FREQUENCY = FamilyDesc("hostagent_cpu_frequency_hertz", G,
                       "CPU frequency from /proc/cpuinfo 'cpu MHz', for CPUs without cpufreq",
                       "hertz", ("cpu",))
ONLINE = FamilyDesc("hostagent_cpus_online", G, "Logical CPUs online")

_SCALING = ((SCALING_MIN, "scaling_min_freq"), (SCALING_MAX, "scaling_max_freq"))
_ALL = "all"  # key of the aggregate line in the previous-sample map


def utilization(prev: CpuTimes, cur: CpuTimes) -> float | None:
    """``1 - Δ(idle+iowait)/Δtotal`` clamped to [0, 1]; None when no ticks passed.

    iowait may step backwards on tickless kernels, hence the clamp.
    """
    idle0, total0 = prev.idle_and_total
    idle1, total1 = cur.idle_and_total
    d_total = total1 - total0
    if d_total <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - (idle1 - idle0) / d_total))


def parse_cpuinfo_mhz(text: str) -> dict[str, float]:
    """``processor`` number -> ``cpu MHz`` (absent on most non-x86 kernels)."""
    out: dict[str, float] = {}
    cpu: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            cpu = value
        elif key == "cpu MHz" and cpu is not None:
            out[cpu] = float(value)
    return out


class CpuCollector:
    name = "cpu"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._prev: dict[str, CpuTimes] = {}

    def collect(self, batch: Batch) -> None:
        stat = parse_proc_stat(self._fs.read_text("proc/stat"))
        prev, self._prev = self._prev, {**stat.cpus, _ALL: stat.total}
        for cpu, times in stat.cpus.items():
            for mode in MODES:
                batch.counter(SECONDS, getattr(times, mode), cpu, mode)
            batch.counter(GUEST, times.guest, cpu, "user")
            batch.counter(GUEST, times.guest_nice, cpu, "nice")
            if cpu in prev and (ratio := utilization(prev[cpu], times)) is not None:
                batch.gauge(UTILIZATION, ratio, cpu)
        if _ALL in prev and (ratio := utilization(prev[_ALL], stat.total)) is not None:
            batch.gauge(UTILIZATION_ALL, ratio)
        self._frequency(batch, stat)
        batch.gauge(ONLINE, len(stat.cpus))  # /proc/stat lists the online CPUs only

    def _frequency(self, batch: Batch, stat: ProcStat) -> None:
        mhz: dict[str, float] | None = None
        for cpu in stat.cpus:
            base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq/"
            cur_khz = self._fs.read_int(base + "scaling_cur_freq")
            if cur_khz is not None:
                batch.gauge(SCALING_FREQ, cur_khz * 1000.0, cpu)
                for family, attr in _SCALING:
                    khz = self._fs.read_int(base + attr)
                    if khz is not None:
                        batch.gauge(family, khz * 1000.0, cpu)
                continue
            if mhz is None:
                mhz = self._cpuinfo_mhz()
            if cpu in mhz:
                batch.gauge(FREQUENCY, mhz[cpu] * 1e6, cpu)

    def _cpuinfo_mhz(self) -> dict[str, float]:
        try:
            return parse_cpuinfo_mhz(self._fs.read_text("proc/cpuinfo"))
        except OSError:
            return {}


COLLECTOR = CollectorInfo(name="cpu", factory=CpuCollector, on_scrape=True, inline=True)
