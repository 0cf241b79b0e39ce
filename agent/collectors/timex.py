"""The kernel clock discipline (NTP/PTP/PPS state) through ``adjtimex(2)``.

Source: :func:`agent.backends.adjtimex.read_timex`, a read-only call
(``modes = 0``), injectable for tests.  Units as adjtimex(2) NOTES gives
them: ``offset`` and ``jitter`` in microseconds, or nanoseconds when the
``STA_NANO`` status bit is set; ``maxerror``, ``esterror`` and ``tick`` in
microseconds; ``freq``, ``ppsfreq`` and ``stabil`` in ppm with a 16-bit binary
fraction (``65536`` is 1 ppm).  Names and conversions are node_exporter's
``timex`` collector's; ``node_timex_sync_status`` is 0 when the call returns
``TIME_ERROR`` (the kernel sets it while ``STA_UNSYNC`` is set, i.e. no
NTP/PTP daemon disciplines the clock), else 1.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from agent.backends.adjtimex import STA_NANO, TIME_ERROR, Timex, read_timex
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G, C = MetricType.GAUGE, MetricType.COUNTER
PPM16 = 1_000_000.0 * 65536.0  # a "ppm with 16-bit fraction" value per unit ratio


def _g(name: str, help: str, unit: str = "") -> FamilyDesc:
    return FamilyDesc(f"node_timex_{name}", G, help, unit)


def _c(name: str, help: str) -> FamilyDesc:
    return FamilyDesc(f"node_timex_{name}", C, help)


SYNC_STATUS = _g("sync_status", "1 if the clock is synchronised to a reliable server, else 0")
OFFSET = _g("offset_seconds", "Offset between the local clock and the reference clock", "seconds")
FREQUENCY = _g("frequency_adjustment_ratio", "Local clock frequency adjustment (1 = none)",
               "ratio")
MAXERROR = _g("maxerror_seconds", "Maximum error of the clock", "seconds")
ESTERROR = _g("estimated_error_seconds", "Estimated error of the clock", "seconds")
STATUS = _g("status", "Clock status bits (STA_*)")
CONSTANT = _g("loop_time_constant", "Phase-locked loop time constant")
TICK = _g("tick_seconds", "Seconds between clock ticks", "seconds")
PPS_FREQUENCY = _g("pps_frequency_hertz", "Pulse-per-second frequency", "hertz")
PPS_JITTER = _g("pps_jitter_seconds", "Pulse-per-second jitter", "seconds")
PPS_SHIFT = _g("pps_shift_seconds", "Pulse-per-second interval duration (log2 seconds)",
               "seconds")
PPS_STABILITY = _g("pps_stability_hertz",
                   "Pulse-per-second stability, average of recent frequency changes", "hertz")
PPS_JITTER_EVENTS = _c("pps_jitter_total", "Pulse-per-second jitter limit exceeded events")
PPS_CALIBRATIONS = _c("pps_calibration_total", "Pulse-per-second calibration intervals")
PPS_ERRORS = _c("pps_error_total", "Pulse-per-second calibration errors")
PPS_STABILITY_EVENTS = _c("pps_stability_exceeded_total",
                          "Pulse-per-second stability limit exceeded events")
TAI_OFFSET = _g("tai_offset_seconds", "International Atomic Time (TAI) offset from UTC", "seconds")


class TimexValues(NamedTuple):
    """A :class:`Timex` in base units."""

    sync_status: int
    offset_seconds: float
    frequency_adjustment_ratio: float
    maxerror_seconds: float
    estimated_error_seconds: float
    status: int
    loop_time_constant: int
    tick_seconds: float
    pps_frequency_hertz: float
    pps_jitter_seconds: float
    pps_shift_seconds: int
    pps_stability_hertz: float
    pps_jitter_total: int
    pps_calibration_total: int
    pps_error_total: int
    pps_stability_exceeded_total: int
    tai_offset_seconds: int


def convert(t: Timex) -> TimexValues:
    """adjtimex(2)'s units to seconds, ratios and hertz."""
    sub = 1e9 if t.status & STA_NANO else 1e6
    return TimexValues(
        sync_status=0 if t.state == TIME_ERROR else 1,
        offset_seconds=t.offset / sub,
        frequency_adjustment_ratio=1.0 + t.freq / PPM16,
        maxerror_seconds=t.maxerror / 1e6,
        estimated_error_seconds=t.esterror / 1e6,
        status=t.status,
        loop_time_constant=t.constant,
        tick_seconds=t.tick / 1e6,
        pps_frequency_hertz=t.ppsfreq / PPM16,
        pps_jitter_seconds=t.jitter / sub,
        pps_shift_seconds=t.shift,
        pps_stability_hertz=t.stabil / PPM16,
        pps_jitter_total=t.jitcnt,
        pps_calibration_total=t.calcnt,
        pps_error_total=t.errcnt,
        pps_stability_exceeded_total=t.stbcnt,
        tai_offset_seconds=t.tai,
    )


GAUGES = (SYNC_STATUS, OFFSET, FREQUENCY, MAXERROR, ESTERROR, STATUS, CONSTANT, TICK,
          PPS_FREQUENCY, PPS_JITTER, PPS_SHIFT, PPS_STABILITY, TAI_OFFSET)
COUNTERS = (PPS_JITTER_EVENTS, PPS_CALIBRATIONS, PPS_ERRORS, PPS_STABILITY_EVENTS)


def _field(family: FamilyDesc) -> str:
    return family.name.removeprefix("node_timex_")


class TimexCollector:
    name = "timex"

    def __init__(self, ctx: CollectorContext, timex: Callable[[], Timex] = read_timex) -> None:
        self._timex = timex

    def collect(self, batch: Batch) -> None:
        try:
            raw = self._timex()
        except PermissionError as exc:
            raise NoData(f"adjtimex(2) refused ({exc.strerror}); a seccomp filter?") from exc
        values = convert(raw)
        for family in GAUGES:
            batch.gauge(family, getattr(values, _field(family)))
        for family in COUNTERS:
            batch.counter(family, getattr(values, _field(family)))


COLLECTOR = CollectorInfo(name="timex", factory=TimexCollector, on_scrape=True, inline=True)
