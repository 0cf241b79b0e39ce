"""Connection tracking table size and statistics, as node_exporter's
conntrack collector serves them.

* ``/proc/sys/net/netfilter/nf_conntrack_count`` and ``nf_conntrack_max``:
  one decimal number each (``node_nf_conntrack_entries``, ``_entries_limit``).
  Absent while the ``nf_conntrack`` module is not loaded: no data.
* ``/proc/net/stat/nf_conntrack``: a header naming the columns, then one line
  of hexadecimal values per possible CPU::

      entries  clashres found new invalid ignore delete chainlength insert ...
      00000000  00000000 00000000 00000000 00000000 00000000 00000000 ...

  The columns vary with the kernel (``searched`` became ``clashres``...), so
  they are read by name; node_exporter's eight are summed over the CPUs and
  served as ``node_nf_conntrack_stat_<name>`` gauges (node_exporter's type;
  they only grow).  A column this kernel lacks gives no series.

All of it is per network namespace: the agent's own.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
COUNT = "proc/sys/net/netfilter/nf_conntrack_count"
MAX = "proc/sys/net/netfilter/nf_conntrack_max"
STAT = "proc/net/stat/nf_conntrack"
ENTRIES = FamilyDesc("node_nf_conntrack_entries", G,
                     "Number of currently allocated flow entries for connection tracking.")
ENTRIES_LIMIT = FamilyDesc("node_nf_conntrack_entries_limit", G, "Maximum size of connection tracking table.")
STATS = {  # column of /proc/net/stat/nf_conntrack -> family
    name: FamilyDesc(f"node_nf_conntrack_stat_{name}", G, help_) for name, help_ in (
        ("found", "Number of searched entries which were successful."),
        ("invalid", "Number of packets seen which can not be tracked."),
        ("ignore", "Number of packets seen which are already connected to a conntrack entry."),
        ("insert", "Number of entries inserted into the list."),
        ("insert_failed", "Number of entries for which list insertion was attempted but failed."),
        ("drop", "Number of packets dropped due to conntrack failure."),
        ("early_drop", "Number of dropped conntrack entries to make room for new ones, "
                       "if maximum table size was reached."),
        ("search_restart", "Number of conntrack table lookups which had to be restarted due to "
                           "hashtable resizes."),
    )}


class ConntrackTable(NamedTuple):
    entries: int
    limit: int


def parse_conntrack_stat(text: str) -> dict[str, int]:
    """Column name -> sum over the CPU lines.  Raises ``ValueError`` when a
    line's width differs from the header's or a value is not hexadecimal."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    names, totals = lines[0], [0] * len(lines[0])
    for number, values in enumerate(lines[1:], 1):
        if len(values) != len(names):
            raise ValueError(f"nf_conntrack line {number}: {len(values)} values for {len(names)} columns")
        for i, v in enumerate(values):
            totals[i] += int(v, 16)
    return dict(zip(names, totals))


class ConntrackCollector:
    name = "conntrack"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            table = ConntrackTable(int(self._fs.read_text(COUNT)), int(self._fs.read_text(MAX)))
        except FileNotFoundError:
            raise NoData("nf_conntrack is not loaded") from None
        batch.gauge(ENTRIES, table.entries)
        batch.gauge(ENTRIES_LIMIT, table.limit)
        try:
            stats = parse_conntrack_stat(self._fs.read_text(STAT))
        except FileNotFoundError:  # CONFIG_NF_CONNTRACK_PROCFS off
            return
        for name, family in STATS.items():
            if name in stats:
                batch.gauge(family, stats[name])


COLLECTOR = CollectorInfo(name="conntrack", factory=ConntrackCollector, on_scrape=True, inline=True)
