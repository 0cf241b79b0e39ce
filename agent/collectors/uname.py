"""The kernel's identity of the host: ``uname(2)`` as one info series.

Source: :func:`agent.backends.uname.read_uname` (``os.uname()`` and
``/proc/sys/kernel/domainname``), injectable for tests.  ``nodename`` is the
host name Grafana's "Node Exporter Full" dashboard takes its host variable
from, so it is served exactly as node_exporter serves it.
"""
from __future__ import annotations

from typing import Callable

from agent.backends.uname import Uname, read_uname
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

LABELS = ("sysname", "release", "version", "machine", "nodename", "domainname")
INFO = FamilyDesc("node_uname_info", MetricType.GAUGE,
                  "System information from uname(2); value is always 1", label_names=LABELS)


def info_labels(u: Uname) -> tuple[str, ...]:
    """The label values of ``node_uname_info``, in ``LABELS`` order."""
    return tuple(getattr(u, name) for name in LABELS)


class UnameCollector:
    name = "uname"

    def __init__(self, ctx: CollectorContext, uname: Callable[[], Uname] = read_uname) -> None:
        self._uname = uname

    def collect(self, batch: Batch) -> None:
        batch.gauge(INFO, 1, *info_labels(self._uname()))


COLLECTOR = CollectorInfo(name="uname", factory=UnameCollector, interval=60.0)
