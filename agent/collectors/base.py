"""The one interface every collector implements, and what it is given.

A collector is a small class with a ``name`` and a ``collect(batch)`` method
(node_exporter's shape).  It reads the host only through the backends in its
:class:`CollectorContext`; the scheduler (``agent.telemetry.scheduler``) owns
timing, timeouts, backoff and error reporting, so a collector just reads,
parses and fills the batch, raising on failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from agent.backends.hostfs import HostFS
from agent.telemetry.model import Batch


class NoData(Exception):
    """The hardware or kernel feature this collector reads is absent here.

    Not an error: the scheduler logs it once, reports the collector as
    ``hostagent_collector_present 0`` and keeps the collector up.
    """


class Collector(Protocol):
    name: str

    def collect(self, batch: Batch) -> None:
        """Read once and add every sample to ``batch``; raise on failure."""


@dataclass(frozen=True)
class CollectorContext:
    """Everything a collector may use.  Built by the daemon, or by a test."""

    hostfs: HostFS = field(default_factory=HostFS)
    options: Mapping[str, Any] = field(default_factory=dict)
    # publish(kind, severity, message, **labels): see agent.telemetry.events
    publish: Callable[..., None] = lambda *a, **k: None
    # The BMC targets (agent.bmc.hub.BmcHub) for the ipmi collector; None: none.
    bmc: Any = None


Factory = Callable[[CollectorContext], Collector]
