"""System time, time zone and clock sources (node_exporter's ``time`` collector).

Sources: the system clock (``time.time()``), the agent's local time zone
(``time.localtime()``: ``tm_zone`` and ``tm_gmtoff``, what the TZ environment
and ``/etc/localtime`` make of it, as for node_exporter's Go runtime), and
``/sys/devices/system/clocksource/clocksourceN/`` with
``available_clocksource`` (space-separated names, e.g. ``tsc kvm-clock``) and
``current_clocksource`` (one name).  The ``device`` label is the position of
the ``clocksourceN`` directory in name order, as node_exporter numbers them.

``node_time_seconds`` minus Prometheus' scrape timestamp shows a node's clock
skew without NTP metrics: ``abs(node_time_seconds - timestamp(node_time_seconds)) > 1``.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
CLOCKSOURCE_DIR = "sys/devices/system/clocksource"
_CS = ("device", "clocksource")
SECONDS = FamilyDesc("node_time_seconds", G, "System time in seconds since the Unix epoch",
                     "seconds")
ZONE_OFFSET = FamilyDesc("node_time_zone_offset_seconds", G,
                         "Offset of the local time zone from UTC", "seconds", ("time_zone",))
AVAILABLE = FamilyDesc("node_time_clocksource_available_info", G,
                       "Clock sources the kernel can use (available_clocksource); always 1",
                       label_names=_CS)
CURRENT = FamilyDesc("node_time_clocksource_current_info", G,
                     "Clock source the kernel uses (current_clocksource); always 1",
                     label_names=_CS)


class ClockSource(NamedTuple):
    available: tuple[str, ...]
    current: str


class Zone(NamedTuple):
    name: str  # "UTC", "CEST"
    offset: int  # seconds east of UTC


def parse_clocksource(available: str, current: str) -> ClockSource:
    return ClockSource(tuple(available.split()), current.strip())


def local_zone(now: float) -> Zone:
    t = time.localtime(now)
    return Zone(t.tm_zone, t.tm_gmtoff)


class TimeCollector:
    name = "time"

    def __init__(self, ctx: CollectorContext, clock: Callable[[], float] = time.time,
                 zone: Callable[[float], Zone] = local_zone) -> None:
        self._fs = ctx.hostfs
        self._clock = clock
        self._zone = zone

    def collect(self, batch: Batch) -> None:
        now = self._clock()
        batch.gauge(SECONDS, now)
        zone = self._zone(now)
        batch.gauge(ZONE_OFFSET, zone.offset, zone.name)
        for device, source in enumerate(self._clocksources()):
            for name in source.available:
                batch.gauge(AVAILABLE, 1, str(device), name)
            if source.current:
                batch.gauge(CURRENT, 1, str(device), source.current)

    def _clocksources(self) -> list[ClockSource]:
        out = []
        for entry in self._fs.listdir(CLOCKSOURCE_DIR):
            if not entry.startswith("clocksource") or not entry[11:].isdigit():
                continue
            base = f"{CLOCKSOURCE_DIR}/{entry}"
            available = self._fs.read_value(f"{base}/available_clocksource")
            current = self._fs.read_value(f"{base}/current_clocksource")
            if available is not None and current is not None:
                out.append(parse_clocksource(available, current))
        return out


COLLECTOR = CollectorInfo(name="time", factory=TimeCollector, on_scrape=True, inline=True)
