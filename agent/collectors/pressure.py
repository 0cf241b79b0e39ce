"""Pressure stall information (PSI) from ``/proc/pressure/{cpu,io,memory,irq}``.

Each file has a ``some`` line (at least one task stalled) and, except older
kernels' ``cpu``, a ``full`` line (all non-idle tasks stalled; ``irq`` has only
this one)::

    some avg10=0.00 avg60=0.01 avg300=0.12 total=6177409
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

``total`` is microseconds of stall since boot; the averages are percentages.
Totals keep node_exporter's names (``waiting`` = some, ``stalled`` = full).
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G, C = MetricType.GAUGE, MetricType.COUNTER
RESOURCES = ("cpu", "io", "memory", "irq")
WINDOWS = (("avg10", "10s"), ("avg60", "60s"), ("avg300", "300s"))


def _total(resource: str, kind: str, what: str) -> FamilyDesc:
    verb = "waiting" if kind == "some" else "stalled"
    return FamilyDesc(f"node_pressure_{resource}_{verb}_seconds_total", C,
                      f"Total time in seconds that {what}", "seconds", scale=1e-6)


TOTALS: dict[tuple[str, str], FamilyDesc] = {
    ("cpu", "some"): _total("cpu", "some", "processes have waited for CPU time"),
    ("cpu", "full"): _total("cpu", "full", "no process could make progress for lack of CPU time"),
    ("io", "some"): _total("io", "some", "processes have waited due to IO congestion"),
    ("io", "full"): _total("io", "full", "no process could make progress due to IO congestion"),
    ("memory", "some"): _total("memory", "some", "processes have waited for memory"),
    ("memory", "full"): _total("memory", "full",
                               "no process could make progress for lack of memory"),
    ("irq", "full"): _total("irq", "full",
                            "no process could make progress due to IRQ/softirq work"),
}
AVG = FamilyDesc("hostagent_pressure_avg_ratio", G,
                 "Share of wall time stalled, averaged over the window (PSI avgN / 100)",
                 "ratio", ("resource", "kind", "window"))


class PressureLine(NamedTuple):
    avg10: float
    avg60: float
    avg300: float
    total_us: int


class Pressure(NamedTuple):
    some: PressureLine | None
    full: PressureLine | None


def parse_pressure(text: str) -> Pressure:
    """Parse one ``/proc/pressure/*`` file; raises ``ValueError`` when malformed."""
    lines: dict[str, PressureLine] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        if kind not in ("some", "full"):
            continue
        values = dict(pair.split("=", 1) for pair in pairs)
        lines[kind] = PressureLine(float(values["avg10"]), float(values["avg60"]),
                                   float(values["avg300"]), int(values["total"]))
    return Pressure(lines.get("some"), lines.get("full"))


class PressureCollector:
    name = "pressure"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        if not self._fs.exists("proc/pressure"):
            raise NoData("/proc/pressure is absent (kernel without PSI, or psi=0)")
        found = False
        for resource in RESOURCES:
            try:
                text = self._fs.read_text(f"proc/pressure/{resource}")
            except FileNotFoundError:
                continue  # e.g. irq needs CONFIG_IRQ_TIME_ACCOUNTING
            found = True
            pressure = parse_pressure(text)
            for kind, line in (("some", pressure.some), ("full", pressure.full)):
                if line is None:
                    continue
                if (family := TOTALS.get((resource, kind))) is not None:
                    batch.counter(family, line.total_us)
                for attr, window in WINDOWS:
                    batch.gauge(AVG, getattr(line, attr) / 100.0, resource, kind, window)
        if not found:
            raise NoData("/proc/pressure has no cpu, io, memory or irq file")


COLLECTOR = CollectorInfo(name="pressure", factory=PressureCollector, on_scrape=True, inline=True)
