"""Kernel activity counters from ``/proc/stat`` (everything but the CPU lines,
which the ``cpu`` collector reads): context switches, interrupts, forks,
runnable/blocked processes, boot time and softirqs.

Same names as node_exporter's ``stat`` collector, except the softirq total,
which node_exporter only has per vector (``node_softirqs_total{vector}``).
"""
from __future__ import annotations

from agent.collectors.procstat import parse_proc_stat
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G, C = MetricType.GAUGE, MetricType.COUNTER
CONTEXT_SWITCHES = FamilyDesc("node_context_switches_total", C, "Context switches since boot")
INTERRUPTS = FamilyDesc("node_intr_total", C, "Interrupts serviced since boot")
FORKS = FamilyDesc("node_forks_total", C, "Processes and threads created since boot")
PROCS_RUNNING = FamilyDesc("node_procs_running", G, "Processes in runnable state")
PROCS_BLOCKED = FamilyDesc("node_procs_blocked", G, "Processes blocked waiting for I/O")
BOOT_TIME = FamilyDesc("node_boot_time_seconds", G, "Unix time the node booted", "seconds")
SOFTIRQS = FamilyDesc("hostagent_softirqs_total", C, "Softirqs serviced since boot, all vectors")

# (ProcStat field, family); absent lines are skipped.
_COUNTERS = (("context_switches", CONTEXT_SWITCHES), ("intr_total", INTERRUPTS),
             ("forks", FORKS), ("softirq_total", SOFTIRQS))
_GAUGES = (("procs_running", PROCS_RUNNING), ("procs_blocked", PROCS_BLOCKED),
           ("boot_time", BOOT_TIME))


class StatCollector:
    name = "stat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        stat = parse_proc_stat(self._fs.read_text("proc/stat"))
        for attr, family in _COUNTERS:
            if (value := getattr(stat, attr)) is not None:
                batch.counter(family, value)
        for attr, family in _GAUGES:
            if (value := getattr(stat, attr)) is not None:
                batch.gauge(family, value)


COLLECTOR = CollectorInfo(name="stat", factory=StatCollector, on_scrape=True, inline=True)
