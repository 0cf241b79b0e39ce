"""System-wide file handles: ``/proc/sys/fs/file-nr``.

Format: three tab-separated integers, ``allocated  free  maximum`` (e.g.
``561\\t0\\t2466097``).  The middle one is always 0 since Linux 2.6 (freed
handles are returned at once) and is not served.  When ``allocated`` nears
``maximum`` (``fs.file-max``), ``open()`` fails with ENFILE everywhere.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
ALLOCATED = FamilyDesc("node_filefd_allocated", G, "File handles allocated (file-nr, first field)")
MAXIMUM = FamilyDesc("node_filefd_maximum", G, "Maximum of file handles (file-nr, third field)")


class FileNr(NamedTuple):
    allocated: int
    maximum: int


def parse_file_nr(text: str) -> FileNr:
    """Raises ``ValueError`` unless there are three integers."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"/proc/sys/fs/file-nr: expected 3 fields, got {text!r}")
    return FileNr(int(fields[0]), int(fields[2]))


class FilefdCollector:
    name = "filefd"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text("proc/sys/fs/file-nr")
        except FileNotFoundError as exc:
            raise NoData("no /proc/sys/fs/file-nr") from exc
        nr = parse_file_nr(text)
        batch.gauge(ALLOCATED, nr.allocated)
        batch.gauge(MAXIMUM, nr.maximum)


COLLECTOR = CollectorInfo(name="filefd", factory=FilefdCollector, on_scrape=True, inline=True)
