"""ARP (IPv4 neighbour) entries per device from ``/proc/net/arp``, as
node_exporter's arp collector serves them (``node_arp_entries{device}``).

Format: a header, then one entry per line, the device last::

    IP address       HW type     Flags       HW address            Mask     Device
    192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0

Incomplete entries (flags 0x0) count too, as they do in node_exporter; a
device without entries has no series.  The file is per network namespace.
"""
from __future__ import annotations

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

PATH = "proc/net/arp"
ENTRIES = FamilyDesc("node_arp_entries", MetricType.GAUGE, "ARP entries by device", "", ("device",))


def parse_arp(text: str) -> dict[str, int]:
    """Device -> number of entries, in first-seen order."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] == "IP":
            continue  # the header, or a blank line
        counts[cols[-1]] = counts.get(cols[-1], 0) + 1
    return counts


class ArpCollector:
    name = "arp"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text(PATH)
        except FileNotFoundError:
            raise NoData("no /proc/net/arp (no IPv4)") from None
        for device, count in parse_arp(text).items():
            batch.gauge(ENTRIES, count, device)


COLLECTOR = CollectorInfo(name="arp", factory=ArpCollector, on_scrape=True, inline=True)
