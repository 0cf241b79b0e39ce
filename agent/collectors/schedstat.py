"""Per-CPU scheduler statistics from ``/proc/schedstat``.

Format (Documentation/scheduler/sched-stats.rst, versions 15 to 17): a
``version`` and a ``timestamp`` line, then per CPU a line
``cpuN f1 .. f9`` followed by its ``domainK`` lines.  Of the nine CPU
fields the last three are served: (7) nanoseconds spent running tasks
(``rq_cpu_time``), (8) nanoseconds tasks waited to run on this CPU
(``run_delay``) and (9) timeslices run on this CPU (``pcount``).
Waiting time growing faster than running time means CPU contention.
No file (a kernel without CONFIG_SCHEDSTATS) is :class:`NoData`.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C = MetricType.COUNTER
_CPU = ("cpu",)
RUNNING = FamilyDesc("node_schedstat_running_seconds_total", C,
                     "Seconds the CPU spent running tasks", "seconds", _CPU, scale=1e-9)
WAITING = FamilyDesc("node_schedstat_waiting_seconds_total", C,
                     "Seconds tasks spent waiting to run on this CPU", "seconds", _CPU, scale=1e-9)
TIMESLICES = FamilyDesc("node_schedstat_timeslices_total", C, "Timeslices run on this CPU",
                        label_names=_CPU)

_CPU_LINE = re.compile(r"^cpu(\d+)((?: \d+){9,})\s*$")


class SchedstatCpu(NamedTuple):
    cpu: str
    running_ns: int
    waiting_ns: int
    timeslices: int


def parse_schedstat(text: str) -> list[SchedstatCpu]:
    """The ``cpuN`` lines; other lines (version, timestamp, domains) are skipped."""
    out = []
    for line in text.splitlines():
        match = _CPU_LINE.match(line)
        if match:
            fields = match.group(2).split()
            out.append(SchedstatCpu(match.group(1), int(fields[6]), int(fields[7]),
                                    int(fields[8])))
    return out


class SchedstatCollector:
    name = "schedstat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text("proc/schedstat")
        except FileNotFoundError as exc:
            raise NoData("no /proc/schedstat (kernel without CONFIG_SCHEDSTATS)") from exc
        for cpu in parse_schedstat(text):
            batch.counter(RUNNING, cpu.running_ns, cpu.cpu)
            batch.counter(WAITING, cpu.waiting_ns, cpu.cpu)
            batch.counter(TIMESLICES, cpu.timeslices, cpu.cpu)


COLLECTOR = CollectorInfo(name="schedstat", factory=SchedstatCollector, on_scrape=True, inline=True)
