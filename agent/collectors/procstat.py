"""Pure parser for ``/proc/stat``, shared by the ``cpu`` and ``stat`` collectors.

Format (proc(5))::

    cpu  user nice system idle iowait irq softirq steal guest guest_nice
    cpu0 ...
    intr <total> <per-IRQ counts...>
    ctxt <context switches>
    btime <boot time, Unix seconds>
    processes <forks since boot>
    procs_running <n>
    procs_blocked <n>
    softirq <total> <per-vector counts...>

CPU times are in USER_HZ ticks; ``user`` already includes ``guest`` and
``nice`` includes ``guest_nice``.  Fields a kernel does not print read as 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class CpuTimes(NamedTuple):
    """One ``cpu`` line, in ticks, in the kernel's field order."""

    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0
    guest: int = 0
    guest_nice: int = 0

    @property
    def idle_and_total(self) -> tuple[int, int]:
        """``(idle + iowait, total)``; total leaves out guest (counted in user)."""
        total = (self.user + self.nice + self.system + self.idle + self.iowait
                 + self.irq + self.softirq + self.steal)
        return self.idle + self.iowait, total


@dataclass(frozen=True)
class ProcStat:
    total: CpuTimes
    cpus: dict[str, CpuTimes] = field(default_factory=dict)  # "0" -> times, in file order
    intr_total: int | None = None
    context_switches: int | None = None
    boot_time: int | None = None
    forks: int | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None
    softirq_total: int | None = None


_SCALARS = {
    "intr": "intr_total",
    "ctxt": "context_switches",
    "btime": "boot_time",
    "processes": "forks",
    "procs_running": "procs_running",
    "procs_blocked": "procs_blocked",
    "softirq": "softirq_total",
}


def parse_proc_stat(text: str) -> ProcStat:
    """Parse the whole file; raises ``ValueError`` if there is no ``cpu`` line."""
    total: CpuTimes | None = None
    cpus: dict[str, CpuTimes] = {}
    scalars: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu"):
            times = CpuTimes(*(int(v) for v in parts[1:11]))
            if key == "cpu":
                total = times
            else:
                cpus[key[3:]] = times
        elif key in _SCALARS and len(parts) > 1:
            scalars[_SCALARS[key]] = int(parts[1])
    if total is None:
        raise ValueError("/proc/stat: no aggregate 'cpu' line")
    return ProcStat(total, cpus, **scalars)
