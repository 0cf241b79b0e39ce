"""The agent's own health: build, kernels in use, each collector's state,
store size, event bus and process resources (node_exporter's
``node_scrape_collector_*`` and the standard ``process_*`` in one place).

Built by the daemon with the objects it reads (it has no ``CollectorInfo`` and
no ``[collectors.agent]`` table), and always enabled.

It runs at every scrape, so it is kept cheap: the per-collector families go
as one prepared layout (rebuilt only when the set of collectors changes) and
the process figures come from one read of ``/proc/self/stat`` rather than
psutil (which also kept psutil out of the start-up imports).
"""
from __future__ import annotations

import os
import platform
import resource
import time
from array import array
from typing import Callable, NamedTuple, Protocol

from agent import __version__, core
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch, FamilyDesc, MetricType, PreparedLayout
from agent.telemetry.scheduler import Scheduler
from agent.telemetry.store import SeriesStore

G, C = MetricType.GAUGE, MetricType.COUNTER
BUILD_INFO = FamilyDesc("hostagent_build_info", G,
                        "Agent version, Python version and which aggregation kernels run (cython or python)",
                        label_names=("version", "python", "kernels"))
UP = FamilyDesc("hostagent_collector_up", G,
                "1 if the collector's last run succeeded, 0 if it failed or timed out",
                label_names=("collector",))
PRESENT = FamilyDesc("hostagent_collector_present", G,
                     "0 if what the collector reads is absent on this host", label_names=("collector",))
DURATION = FamilyDesc("hostagent_collector_duration_seconds", G,
                      "Duration of the collector's last run", "seconds", ("collector",))
ERRORS = FamilyDesc("hostagent_collector_errors_total", C,
                    "Failed runs of the collector (errors and timeouts)", label_names=("collector",))
TIMEOUTS = FamilyDesc("hostagent_collector_timeouts_total", C,
                      "Runs of the collector that overran their timeout", label_names=("collector",))
CPU_USED = FamilyDesc("hostagent_collector_cpu_seconds_total", C,
                      "CPU time of the collector's runs (collecting and storing), from the clock of the "
                      "thread that ran each", "seconds", ("collector",), scale=1e-6)
LAST_OK = FamilyDesc("hostagent_collector_last_success_timestamp_seconds", G,
                     "Unix time of the collector's last successful run", "seconds", ("collector",))
# node_exporter's names for the same two facts, so its dashboards' "scrape" panels work.
SCRAPE_DURATION = FamilyDesc("node_scrape_collector_duration_seconds", G,
                             "node_exporter: Duration of a collector scrape.", "seconds",
                             ("collector",))
SCRAPE_SUCCESS = FamilyDesc("node_scrape_collector_success", G,
                            "node_exporter: Whether a collector succeeded.", label_names=("collector",))
SERIES = FamilyDesc("hostagent_series", G,
                    "Series served on /metrics (visible collectors, with a value)")
EVENTS = FamilyDesc("hostagent_events_published_total", C, "Events published on WatchEvents")
DROPPED = FamilyDesc("hostagent_events_dropped_total", C,
                     "Events dropped because a watcher did not keep up")
STREAMS = FamilyDesc("hostagent_grpc_active_streams", G, "Open server streams (StreamMetrics, WatchEvents)")
# The process_* families under the names every Prometheus client library
# exports, so the standard alerts and dashboards (restarts, fd exhaustion,
# memory growth) work unchanged.
RSS = FamilyDesc("process_resident_memory_bytes", G, "Resident memory size in bytes", "bytes")
VMS = FamilyDesc("process_virtual_memory_bytes", G, "Virtual memory size in bytes", "bytes")
VMS_MAX = FamilyDesc("process_virtual_memory_max_bytes", G,
                     "Maximum amount of virtual memory available in bytes", "bytes")
CPU = FamilyDesc("process_cpu_seconds_total", C, "Total user and system CPU time spent in seconds",
                 "seconds", scale=1e-6)
FDS = FamilyDesc("process_open_fds", G, "Number of open file descriptors")
MAX_FDS = FamilyDesc("process_max_fds", G, "Maximum number of open file descriptors")
START = FamilyDesc("process_start_time_seconds", G,
                   "Start time of the process since unix epoch in seconds", "seconds")
THREADS = FamilyDesc("hostagent_process_threads", G, "Threads of the agent")
AUDIT_HEALTHY = FamilyDesc("hostagent_audit_healthy", G,
                           "1 while the audit trail can be written; 0: changes are refused")
AUDIT_ERRORS = FamilyDesc("hostagent_audit_write_errors_total", C,
                          "Audit records that could not be written")
AUDIT_SUPPRESSED = FamilyDesc("hostagent_audit_denials_suppressed_total", C,
                              "Denied calls counted but not written one by one (rate limit, low disk)")


class AuditStats(Protocol):
    """What this collector reads of the audit trail (``agent.audit.AuditLog``)."""

    healthy: bool
    errors: int
    suppressed_total: int

class SelfStat(NamedTuple):
    """What ``/proc/self/stat`` says of the process, in the units exported."""

    cpu_seconds: float
    threads: int
    start_ticks: int  # clock ticks after boot
    vms_bytes: int
    rss_bytes: int


def parse_self_stat(text: str, ticks_per_second: int, page_size: int) -> SelfStat:
    """Parse ``/proc/<pid>/stat`` (proc(5)); the command name may hold spaces
    or parentheses, so fields are counted from the last ``)``."""
    f = text.rsplit(")", 1)[1].split()
    return SelfStat(cpu_seconds=(int(f[11]) + int(f[12])) / ticks_per_second, threads=int(f[17]),
                    start_ticks=int(f[19]), vms_bytes=int(f[20]), rss_bytes=int(f[21]) * page_size)


def boot_time(proc_stat: str) -> float:
    """``btime`` of ``/proc/stat``: the boot time in seconds since the epoch."""
    for line in proc_stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


# The per-collector families, in the order of a prepared layout's rows.
PER_COLLECTOR = (UP, PRESENT, DURATION, ERRORS, TIMEOUTS, LAST_OK, SCRAPE_DURATION, SCRAPE_SUCCESS,
                 CPU_USED)
_TICKS = os.sysconf("SC_CLK_TCK")
# Seconds between two trims: 0.2-1 ms each.  Every 10 s rather than every
# minute kept 4096 interfaces at 117-118 MB instead of 119-123 MB (the
# garbage of six 1 s collections instead of sixty; docs/benchmarks.md).
TRIM_EVERY = 10.0
TRIM_FIRST = 10.0  # seconds after start of the first
_PAGE = os.sysconf("SC_PAGE_SIZE")


class AgentCollector:
    name = "agent"

    def __init__(self, scheduler: Scheduler, store: SeriesStore, events: EventBus,
                 active_streams: Callable[[], int] = lambda: 0,
                 audit: Callable[[], AuditStats | None] = lambda: None,
                 trim: Callable[[], object] = lambda: None) -> None:
        self._scheduler = scheduler
        # Gives freed heap back to the kernel (agent.backends.malloc.trim), at
        # most every TRIM_EVERY seconds: here because this collector runs
        # whenever the agent is scraped or read, so it never wakes the agent.
        # The first soon after start, when the start-up runs' garbage is free.
        self._trim, self._trim_after = trim, time.monotonic() + TRIM_FIRST
        self._store = store
        self._events = events
        self._active_streams = active_streams
        self._audit = audit
        with open("/proc/stat") as f:
            btime = boot_time(f.read())
        self._started = btime + self._self_stat().start_ticks / _TICKS
        self._names: tuple[str, ...] = ()
        self._layout = PreparedLayout([])

    @staticmethod
    def _self_stat() -> SelfStat:
        with open("/proc/self/stat") as f:
            return parse_self_stat(f.read(), _TICKS, _PAGE)

    def collect(self, batch: Batch) -> None:
        if time.monotonic() >= self._trim_after:
            self._trim()
            self._trim_after = time.monotonic() + TRIM_EVERY
        batch.gauge(BUILD_INFO, 1, __version__, platform.python_version(), core.IMPLEMENTATION)
        batch.gauge(START, self._started)
        # not run yet: no up=0 (and no alert) at start-up
        statuses = [st for st in self._scheduler.statuses() if st.runs_total or st.timeouts_total]
        names = tuple(st.name for st in statuses)
        if names != self._names:
            self._names = names
            self._layout = PreparedLayout([(fam, (n,)) for n in names for fam in PER_COLLECTOR])
        raw, value = array("Q"), array("d")
        for st in statuses:
            up = 1.0 if st.up else 0.0
            raw.extend((0, 0, 0, st.errors_total, st.timeouts_total, 0, 0, 0, int(st.cpu_seconds * 1e6)))
            value.extend((up, 1.0 if st.present else 0.0, st.last_duration, 0.0, 0.0,
                          st.last_success, st.last_duration, up, 0.0))
        batch.add_prepared(self._layout, raw=raw, value=value)
        batch.gauge(SERIES, self._store.series_count())
        batch.counter(EVENTS, self._events.published_total)
        batch.counter(DROPPED, self._events.dropped_total)
        batch.gauge(STREAMS, self._active_streams())
        audit = self._audit()
        if audit is not None:  # from the start of the API on
            batch.gauge(AUDIT_HEALTHY, 1 if audit.healthy else 0)
            batch.counter(AUDIT_ERRORS, audit.errors)
            batch.counter(AUDIT_SUPPRESSED, audit.suppressed_total)
        stat = self._self_stat()
        batch.gauge(RSS, stat.rss_bytes)
        batch.gauge(VMS, stat.vms_bytes)
        batch.counter(CPU, int(stat.cpu_seconds * 1e6))
        batch.gauge(FDS, len(os.listdir("/proc/self/fd")))
        batch.gauge(MAX_FDS, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
        # Unlimited is RLIM_INFINITY, 2^64 - 1, as client_golang reports it.
        batch.gauge(VMS_MAX, float(2**64 - 1 if address_space < 0 else address_space))
        batch.gauge(THREADS, stat.threads)
