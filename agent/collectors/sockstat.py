"""Socket counts from ``/proc/net/sockstat`` and ``/proc/net/sockstat6``, as
node_exporter's sockstat collector serves them.

Format: one line per protocol, ``NAME: key value key value...``::

    sockets: used 38
    TCP: inuse 9 orphan 0 tw 5 alloc 12 mem 202
    FRAG: inuse 0 memory 0
    TCP6: inuse 3

``sockets: used`` becomes ``node_sockstat_sockets_used``; every other
``inuse``/``orphan``/``tw``/``alloc``/``mem``/``memory`` value becomes
``node_sockstat_<PROTO>_<key>`` (``node_sockstat_TCP_inuse``), and ``mem``,
which counts pages, also ``node_sockstat_<PROTO>_mem_bytes``.  Either file
may be absent (IPv4 or IPv6 disabled); both are per network namespace.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
FILES = ("proc/net/sockstat", "proc/net/sockstat6")
KEYS = ("inuse", "orphan", "tw", "alloc", "mem", "memory")  # what node_exporter serves
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SOCKETS_USED = FamilyDesc("node_sockstat_sockets_used", G, "Number of IPv4 sockets in use.")


class SockStat(NamedTuple):
    protocol: str  # "TCP", "UDP6"...; "sockets" for the ``sockets: used`` line
    key: str  # "inuse"
    value: int


def parse_sockstat(text: str) -> list[SockStat]:
    """Every ``key value`` pair of every line, in file order.  Raises
    ``ValueError`` on a line that is not ``NAME: key value...``."""
    out: list[SockStat] = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not line.strip():
            continue
        if not sep or len(parts) % 2:
            raise ValueError(f"sockstat: unexpected line {line!r}")
        out.extend(SockStat(name.strip(), k, int(v)) for k, v in zip(parts[0::2], parts[1::2]))
    return out


class SockstatCollector:
    name = "sockstat"

    def __init__(self, ctx: CollectorContext, page_size: int = PAGE_SIZE) -> None:
        self._fs = ctx.hostfs
        self._page_size = page_size
        self._families: dict[str, FamilyDesc] = {}

    def collect(self, batch: Batch) -> None:
        stats: list[SockStat] = []
        found = 0
        for rel in FILES:
            try:
                stats += parse_sockstat(self._fs.read_text(rel))
                found += 1
            except FileNotFoundError:
                continue
        if not found:
            raise NoData("no /proc/net/sockstat or sockstat6")
        for stat in stats:
            if stat.protocol == "sockets":
                if stat.key == "used":
                    batch.gauge(SOCKETS_USED, stat.value)
            elif stat.key in KEYS:
                batch.gauge(self._family(f"{stat.protocol}_{stat.key}", stat, ""), stat.value)
                if stat.key == "mem":
                    family = self._family(f"{stat.protocol}_mem_bytes", stat, "bytes")
                    batch.gauge(family, stat.value * self._page_size)

    def _family(self, suffix: str, stat: SockStat, unit: str) -> FamilyDesc:
        family = self._families.get(suffix)
        if family is None:
            family = self._families[suffix] = FamilyDesc(
                f"node_sockstat_{suffix}", G,
                f"Number of {stat.protocol} sockets in state {stat.key}." if not unit else
                f"Memory of {stat.protocol} sockets in bytes ({stat.key} pages times the page size).",
                unit)
        return family


COLLECTOR = CollectorInfo(name="sockstat", factory=SockstatCollector, on_scrape=True, inline=True)
