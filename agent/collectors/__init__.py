"""Built-in collectors by name (the daemon enables them from the config)."""
from __future__ import annotations

from agent.collectors.base import Factory
from agent.collectors.cpu import CpuCollector
from agent.collectors.hwmon import HwmonCollector
from agent.collectors.loadavg import LoadavgCollector
from agent.collectors.meminfo import MeminfoCollector
from agent.collectors.pressure import PressureCollector
from agent.collectors.stat import StatCollector
from agent.collectors.vmstat import VmstatCollector

BUILTIN: dict[str, Factory] = {
    "cpu": CpuCollector,
    "stat": StatCollector,
    "loadavg": LoadavgCollector,
    "pressure": PressureCollector,
    "meminfo": MeminfoCollector,
    "vmstat": VmstatCollector,
    "hwmon": HwmonCollector,
}
