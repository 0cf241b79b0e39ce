"""CPU package, core, uncore and DRAM energy from RAPL (powercap).

Source: ``/sys/class/powercap/<zone>/`` for every zone directory with a
``name`` file (``intel-rapl:0`` is ``package-0``, ``intel-rapl:0:0`` its
``core``, ...; Documentation/power/powercap/powercap.rst): ``energy_uj``, a
counter in microjoules that wraps to 0 after ``max_energy_range_uj``.

Names are node_exporter's: ``node_rapl_<name>_joules_total{index, path}``,
where a ``name`` ending in ``-N`` gives ``index`` N (``package-1`` ->
``node_rapl_package_joules_total{index="1"}``) and a repeated name without
one is numbered in directory order (``dram``, ``dram``).  ``path`` is the
zone's directory under ``/sys``.

Unlike node_exporter, the counter does not wrap: the collector keeps each
zone's last reading and adds ``max_energy_range_uj`` whenever the reading
goes down, so the series stays monotonic while the agent runs (a package
at 200 W wraps a 262 kJ range every 22 minutes).  Since Linux 5.10
``energy_uj`` is readable by root only (CVE-2020-8694, a power side channel):
unreadable counters are :class:`NoData`, saying so.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

POWERCAP = "sys/class/powercap"
_INVALID_RUN = re.compile(r"_*[^0-9A-Za-z_]+_*")


class Zone(NamedTuple):
    name: str  # "package", "core", "dram" (an index suffix removed)
    index: int
    dir: str  # "intel-rapl:0"
    max_energy_range_uj: int


def split_name(raw: str) -> tuple[str, int | None]:
    """``package-0`` -> (``package``, 0); ``dram`` -> (``dram``, None)."""
    parts = raw.split("-")
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return raw, None


def metric_name(zone_name: str) -> str:
    """node_exporter's sanitised family name for a zone name."""
    return f"node_rapl_{_INVALID_RUN.sub('_', zone_name + '_joules_total')}"


def list_zones(fs: HostFS) -> list[Zone]:
    """The zones in directory order, indexed as node_exporter indexes them."""
    zones: list[Zone] = []
    used: dict[str, int] = {}
    for entry in fs.listdir(POWERCAP):
        raw = fs.read_value(f"{POWERCAP}/{entry}/name")
        max_range = fs.read_int(f"{POWERCAP}/{entry}/max_energy_range_uj")
        if raw is None or max_range is None:
            continue  # the control type directory ("intel-rapl") has no name
        name, index = split_name(raw)
        if index is None:
            index = used.get(name, 0)
        used[name] = index + 1
        zones.append(Zone(name, index, entry, max_range))
    return zones


class Unwrapper:
    """Makes a wrapping counter monotonic: each time a reading is lower than
    the previous one, the counter's range is added to an offset."""

    __slots__ = ("last", "offset")

    def __init__(self) -> None:
        self.last: int | None = None
        self.offset = 0

    def __call__(self, reading: int, max_range: int) -> int:
        if self.last is not None and reading < self.last:
            self.offset += max_range
        self.last = reading
        return reading + self.offset


class RaplCollector:
    name = "rapl"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._families: dict[str, FamilyDesc] = {}
        self._unwrap: dict[str, Unwrapper] = {}

    def collect(self, batch: Batch) -> None:
        zones = list_zones(self._fs)
        if not zones:
            raise NoData("no RAPL zone in /sys/class/powercap")
        seen = set()
        for zone in zones:
            try:
                reading = int(self._fs.read_text(f"{POWERCAP}/{zone.dir}/energy_uj").strip())
            except PermissionError as exc:
                raise NoData("RAPL energy_uj is readable by root only (Linux >= 5.10): run "
                             "the agent as root or give it read access") from exc
            seen.add(zone.dir)
            unwrap = self._unwrap.setdefault(zone.dir, Unwrapper())
            batch.counter(self._family(zone.name), unwrap(reading, zone.max_energy_range_uj),
                          str(zone.index), f"/{POWERCAP}/{zone.dir}")
        for gone in self._unwrap.keys() - seen:
            del self._unwrap[gone]

    def _family(self, zone_name: str) -> FamilyDesc:
        family = self._families.get(zone_name)
        if family is None:
            family = self._families[zone_name] = FamilyDesc(
                metric_name(zone_name), MetricType.COUNTER,
                f"Energy used by the RAPL {zone_name} domain", "joules", ("index", "path"),
                scale=1e-6)
        return family


COLLECTOR = CollectorInfo(name="rapl", factory=RaplCollector, on_scrape=True)
