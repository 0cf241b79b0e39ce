"""The agent's own health: build, kernels in use, each collector's state,
store size, event bus and process resources (node_exporter's
``node_scrape_collector_*`` and the standard ``process_*`` in one place).

Built by the daemon with the objects it reads (it has no ``CollectorInfo`` and
no ``[collectors.agent]`` table), and always enabled.
"""
from __future__ import annotations

import platform
from typing import Callable, Protocol

import psutil

from agent import __version__, core
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch, FamilyDesc, MetricType
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

class AgentCollector:
    name = "agent"

    def __init__(self, scheduler: Scheduler, store: SeriesStore, events: EventBus,
                 active_streams: Callable[[], int] = lambda: 0,
                 audit: Callable[[], AuditStats | None] = lambda: None) -> None:
        self._scheduler = scheduler
        self._store = store
        self._events = events
        self._active_streams = active_streams
        self._audit = audit
        self._process = psutil.Process()
        self._started = self._process.create_time()

    def collect(self, batch: Batch) -> None:
        batch.gauge(BUILD_INFO, 1, __version__, platform.python_version(), core.IMPLEMENTATION)
        batch.gauge(START, self._started)
        for st in self._scheduler.statuses():
            if not st.runs_total and not st.timeouts_total:
                continue  # not run yet: no up=0 (and no alert) at start-up
            batch.gauge(UP, 1 if st.up else 0, st.name)
            batch.gauge(PRESENT, 1 if st.present else 0, st.name)
            batch.gauge(DURATION, st.last_duration, st.name)
            batch.counter(ERRORS, st.errors_total, st.name)
            batch.counter(TIMEOUTS, st.timeouts_total, st.name)
            batch.gauge(LAST_OK, st.last_success, st.name)
            batch.gauge(SCRAPE_DURATION, st.last_duration, st.name)
            batch.gauge(SCRAPE_SUCCESS, 1 if st.up else 0, st.name)
        batch.gauge(SERIES, self._store.series_count())
        batch.counter(EVENTS, self._events.published_total)
        batch.counter(DROPPED, self._events.dropped_total)
        batch.gauge(STREAMS, self._active_streams())
        audit = self._audit()
        if audit is not None:  # from the start of the API on
            batch.gauge(AUDIT_HEALTHY, 1 if audit.healthy else 0)
            batch.counter(AUDIT_ERRORS, audit.errors)
            batch.counter(AUDIT_SUPPRESSED, audit.suppressed_total)
        with self._process.oneshot():
            memory = self._process.memory_info()
            batch.gauge(RSS, memory.rss)
            batch.gauge(VMS, memory.vms)
            times = self._process.cpu_times()
            batch.counter(CPU, int((times.user + times.system) * 1e6))
            batch.gauge(FDS, self._process.num_fds())
            batch.gauge(MAX_FDS, self._process.rlimit(psutil.RLIMIT_NOFILE)[0])
            address_space = self._process.rlimit(psutil.RLIMIT_AS)[0]
            # Unlimited is RLIM_INFINITY, 2^64 - 1, as client_golang reports it.
            batch.gauge(VMS_MAX, float(2**64 - 1 if address_space < 0 else address_space))
            batch.gauge(THREADS, self._process.num_threads())
