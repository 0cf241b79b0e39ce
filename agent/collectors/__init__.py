"""Built-in collectors by name (the daemon enables them from the config)."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from agent.collectors.base import Factory
from agent.config_values import duration, netns_list
from agent.collectors.cpu import CpuCollector
from agent.collectors.hwmon import HwmonCollector
from agent.collectors.ipmi import IpmiCollector
from agent.collectors.loadavg import LoadavgCollector
from agent.collectors.meminfo import MeminfoCollector
from agent.collectors.netdev import NetdevCollector
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
    "netdev": NetdevCollector,
    "ipmi": IpmiCollector,
}

# Collector-specific config keys under [collectors.<name>], with their checkers.
OPTIONS: Mapping[str, Mapping[str, Callable[[Any], Any]]] = {
    "netdev": {"namespaces": netns_list, "grace": duration},
}

# Collectors whose interval defaults to something other than telemetry.interval:
# every counter of every interface, every second.
DEFAULT_INTERVALS: Mapping[str, float] = {"netdev": 1.0, "ipmi": 10.0}
# The ipmi collector's timeout defaults to the longest BMC target timeout plus
# this margin: each BMC's poll is bounded by its own timeout (agent.bmc.guard),
# and the collector must not be cut off before the slowest one reports.
IPMI_TIMEOUT_MARGIN = 1.0
# ...and whose history is shorter than telemetry.retention: 25 counters per
# interface every second would take 0.9 GB for 4096 interfaces at 15 min.
DEFAULT_RETENTIONS: Mapping[str, float] = {"netdev": 120.0}
