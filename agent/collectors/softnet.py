"""Per-CPU packet processing from ``/proc/net/softnet_stat``, as
node_exporter's softnet collector serves it.

One line per online CPU, hexadecimal 32-bit columns (net/core/net-procfs.c);
the columns grew over time, so a line has 9 to 15 of them::

    0  processed       packets taken off the backlog by the NAPI softirq
    1  dropped         packets dropped: the backlog was full (netdev_max_backlog)
    2  time_squeeze    softirq runs that ended with work left (budget or time)
    3-7                zero (were fastroute)
    8  cpu_collision   zero since Linux 4.x (was a lock collision count)
    9  received_rps    times this CPU was woken by an RPS IPI          (2.6.35+)
    10 flow_limit      times the flow limit was hit                    (3.11+)
    11 backlog_len     packets in the input and process queues now     (5.10+)
    12 cpu index       the CPU this line is for                        (5.10+)
    13 input_qlen, 14 process_qlen                                     (6.x)

The ``cpu`` label is column 12 where the kernel prints it, else the line
number (equal while no CPU is offline).  Columns the kernel does not print
give no series.  The counters are 32 bits wide and wrap.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C, G = MetricType.COUNTER, MetricType.GAUGE
PATH = "proc/net/softnet_stat"
_CPU = ("cpu",)


def _counter(name: str, help_: str) -> FamilyDesc:
    return FamilyDesc(f"node_softnet_{name}_total", C, help_, "", _CPU, counter_bits=32)


PROCESSED = _counter("processed", "Number of processed packets")
DROPPED = _counter("dropped", "Number of dropped packets")
TIMES_SQUEEZED = _counter("times_squeezed", "Number of times processing packets ran out of quota")
CPU_COLLISION = _counter("cpu_collision",
                         "Number of collision occur while obtaining device lock while transmitting")
RECEIVED_RPS = _counter("received_rps", "Number of times cpu woken up received_rps")
FLOW_LIMIT_COUNT = _counter("flow_limit_count", "Number of times flow limit has been reached")
BACKLOG_LEN = FamilyDesc("node_softnet_backlog_len", G, "Softnet backlog status", "", _CPU)
COUNTERS = (PROCESSED, DROPPED, TIMES_SQUEEZED, CPU_COLLISION, RECEIVED_RPS, FLOW_LIMIT_COUNT)


class SoftnetStat(NamedTuple):
    cpu: int
    processed: int
    dropped: int
    time_squeezed: int
    cpu_collision: int
    received_rps: int | None  # None: the kernel does not print the column
    flow_limit_count: int | None
    backlog_len: int | None


def parse_softnet(text: str) -> list[SoftnetStat]:
    """One entry per line.  Raises ``ValueError`` on a line of fewer than 9
    columns or a column that is not hexadecimal."""
    out: list[SoftnetStat] = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        cols = [int(c, 16) for c in line.split()]
        if len(cols) < 9:
            raise ValueError(f"softnet_stat line {number}: {len(cols)} columns, expected at least 9")
        at = lambda i: cols[i] if len(cols) > i else None  # noqa: E731
        out.append(SoftnetStat(cpu=cols[12] if len(cols) > 12 else number, processed=cols[0],
                               dropped=cols[1], time_squeezed=cols[2], cpu_collision=cols[8],
                               received_rps=at(9), flow_limit_count=at(10), backlog_len=at(11)))
    return out


class SoftnetCollector:
    name = "softnet"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text(PATH)
        except FileNotFoundError:
            raise NoData("no /proc/net/softnet_stat") from None
        for stat in parse_softnet(text):
            cpu = str(stat.cpu)
            values = (stat.processed, stat.dropped, stat.time_squeezed, stat.cpu_collision,
                      stat.received_rps, stat.flow_limit_count)
            for family, value in zip(COUNTERS, values):
                if value is not None:
                    batch.counter(family, value, cpu)
            if stat.backlog_len is not None:
                batch.gauge(BACKLOG_LEN, stat.backlog_len, cpu)


COLLECTOR = CollectorInfo(name="softnet", factory=SoftnetCollector, on_scrape=True, inline=True)
