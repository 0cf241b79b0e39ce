"""Load averages and task counts from ``/proc/loadavg``.

Format: ``0.08 0.04 0.01 1/87 4612`` -- the 1, 5 and 15 minute load
averages, runnable/total scheduling entities, and the last PID allocated.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
LOAD1 = FamilyDesc("node_load1", G, "1m load average")
LOAD5 = FamilyDesc("node_load5", G, "5m load average")
LOAD15 = FamilyDesc("node_load15", G, "15m load average")
TASKS_RUNNABLE = FamilyDesc("hostagent_tasks_runnable", G,
                            "Runnable scheduling entities (processes and threads)")
TASKS_TOTAL = FamilyDesc("hostagent_tasks", G,
                         "Scheduling entities (processes and threads) that exist")


class LoadAvg(NamedTuple):
    load1: float
    load5: float
    load15: float
    runnable: int
    tasks: int


def parse_loadavg(text: str) -> LoadAvg:
    """Raises ``ValueError`` on a malformed line."""
    fields = text.split()
    if len(fields) < 4:
        raise ValueError(f"/proc/loadavg: unexpected content {text!r}")
    runnable, sep, tasks = fields[3].partition("/")
    if not sep:
        raise ValueError(f"/proc/loadavg: expected r/t, got {fields[3]!r}")
    return LoadAvg(float(fields[0]), float(fields[1]), float(fields[2]), int(runnable), int(tasks))


class LoadavgCollector:
    name = "loadavg"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        load = parse_loadavg(self._fs.read_text("proc/loadavg"))
        batch.gauge(LOAD1, load.load1)
        batch.gauge(LOAD5, load.load5)
        batch.gauge(LOAD15, load.load15)
        batch.gauge(TASKS_RUNNABLE, load.runnable)
        batch.gauge(TASKS_TOTAL, load.tasks)


COLLECTOR = CollectorInfo(name="loadavg", factory=LoadavgCollector, on_scrape=True, inline=True)
