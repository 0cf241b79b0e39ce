"""Memory errors counted by the kernel's EDAC drivers.

Source: ``/sys/devices/system/edac/mc/mcN/`` (Documentation/ABI/testing/
sysfs-devices-edac), one directory per memory controller, each attribute one
decimal integer: ``ce_count`` / ``ue_count`` (corrected / uncorrected errors
since load or the last ``reset_counters``), ``ce_noinfo_count`` /
``ue_noinfo_count`` (errors the driver could not place on a chip-select row),
and per chip-select row ``csrowK/ce_count`` and ``csrowK/ue_count``.

node_exporter's names: the ``noinfo`` counts are the ``csrow="unknown"``
series of the per-row families.  A rising correctable count on one row is
the usual warning before a DIMM fails.  No ``mcN`` directory (no EDAC driver,
most VMs) is :class:`NoData`.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C = MetricType.COUNTER
MC_DIR = "sys/devices/system/edac/mc"
CE = FamilyDesc("node_edac_correctable_errors_total", C,
                "Correctable memory errors of the memory controller", label_names=("controller",))
UE = FamilyDesc("node_edac_uncorrectable_errors_total", C,
                "Uncorrectable memory errors of the memory controller",
                label_names=("controller",))
CSROW_CE = FamilyDesc("node_edac_csrow_correctable_errors_total", C,
                      "Correctable memory errors of the chip-select row (unknown: not placed)",
                      label_names=("controller", "csrow"))
CSROW_UE = FamilyDesc("node_edac_csrow_uncorrectable_errors_total", C,
                      "Uncorrectable memory errors of the chip-select row (unknown: not placed)",
                      label_names=("controller", "csrow"))

_MC = re.compile(r"^mc(\d+)$")
_CSROW = re.compile(r"^csrow(\d+)$")


class Csrow(NamedTuple):
    csrow: str  # "0", or "unknown" for the noinfo counts
    ce: int | None
    ue: int | None


class Controller(NamedTuple):
    controller: str  # "0" for mc0
    ce: int | None
    ue: int | None
    csrows: list[Csrow]


def read_controller(fs: HostFS, entry: str) -> Controller:
    """One ``mcN`` directory; an attribute that cannot be read is None."""
    base = f"{MC_DIR}/{entry}"
    rows = [Csrow("unknown", fs.read_int(f"{base}/ce_noinfo_count"),
                  fs.read_int(f"{base}/ue_noinfo_count"))]
    for sub in sorted((e for e in fs.listdir(base) if _CSROW.match(e)), key=lambda e: int(e[5:])):
        rows.append(Csrow(sub[5:], fs.read_int(f"{base}/{sub}/ce_count"),
                          fs.read_int(f"{base}/{sub}/ue_count")))
    return Controller(entry[2:], fs.read_int(f"{base}/ce_count"), fs.read_int(f"{base}/ue_count"),
                      rows)


class EdacCollector:
    name = "edac"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        entries = sorted((e for e in self._fs.listdir(MC_DIR) if _MC.match(e)),
                         key=lambda e: int(e[2:]))
        if not entries:
            raise NoData("no EDAC memory controller (/sys/devices/system/edac/mc/mc*)")
        for entry in entries:
            mc = read_controller(self._fs, entry)
            if mc.ce is not None:
                batch.counter(CE, mc.ce, mc.controller)
            if mc.ue is not None:
                batch.counter(UE, mc.ue, mc.controller)
            for row in mc.csrows:
                if row.ce is not None:
                    batch.counter(CSROW_CE, row.ce, mc.controller, row.csrow)
                if row.ue is not None:
                    batch.counter(CSROW_UE, row.ue, mc.controller, row.csrow)


COLLECTOR = CollectorInfo(name="edac", factory=EdacCollector, interval=30.0)
