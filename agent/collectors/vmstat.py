"""Paging, swapping and OOM-kill counters from ``/proc/vmstat``.

node_exporter exposes these as untyped ``node_vmstat_pswpin`` etc.; hostagent
exposes proper counters with ``_total`` names instead, so rates and counter
resets are handled by the store and by Prometheus without ``rate()`` guesses.
Fields a kernel does not print (``oom_kill`` before 4.13) are skipped.
"""
from __future__ import annotations

from agent.collectors.base import CollectorContext
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C = MetricType.COUNTER
# /proc/vmstat key -> family
COUNTERS: dict[str, FamilyDesc] = {
    "pswpin": FamilyDesc("hostagent_swap_in_pages_total", C, "Pages swapped in since boot"),
    "pswpout": FamilyDesc("hostagent_swap_out_pages_total", C, "Pages swapped out since boot"),
    "pgfault": FamilyDesc("hostagent_page_faults_total", C,
                          "Page faults since boot, minor and major"),
    "pgmajfault": FamilyDesc("hostagent_major_page_faults_total", C,
                             "Major page faults (needing I/O) since boot"),
    "oom_kill": FamilyDesc("hostagent_oom_kills_total", C,
                           "Processes killed by the kernel's OOM killer since boot"),
}


def parse_vmstat(text: str) -> dict[str, int]:
    """Every ``name value`` line of ``/proc/vmstat``."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


class VmstatCollector:
    name = "vmstat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        values = parse_vmstat(self._fs.read_text("proc/vmstat"))
        for key, family in COUNTERS.items():
            if key in values:
                batch.counter(family, values[key])
