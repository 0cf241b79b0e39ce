"""The one interface every collector implements, what it is given, and how it
declares itself.

A collector is a small class with a ``name`` and a ``collect(batch)`` method
(node_exporter's shape).  It reads the host only through the backends in its
:class:`CollectorContext`; the scheduler (``agent.telemetry.scheduler``) owns
timing, timeouts, backoff and error reporting, so a collector just reads,
parses and fills the batch, raising on failure.

Each collector's file ends with its declaration, node_exporter's
``registerCollector(name, defaultEnabled, factory)`` as a value::

    COLLECTOR = CollectorInfo(name="netdev", factory=NetdevCollector, interval=1.0,
                              retention=120.0, options={"namespaces": netns_list})

``agent/collectors/__init__.py`` lists the host's collectors, one line each; a
feature (``agent.feature``) lists its own.  The config loader validates
``[collectors.<name>]`` against the declared ``options``; the daemon fills
what the file leaves unset from the declaration (:meth:`CollectorInfo.effective`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping, Protocol

from agent.backends.hostfs import HostFS
from agent.config import CollectorConfig, Config
from agent.telemetry.events import Publish, no_publish
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
    """Everything a host collector may use.  Built by the daemon, or by a test.
    A feature's collector gets what the feature owns (e.g. the BMC hub) from
    the feature, in its constructor, not from here."""

    hostfs: HostFS = field(default_factory=HostFS)
    # The [collectors.<name>] keys the declaration's ``options`` checked.
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    publish: Publish = no_publish
    # Names of the families the agent's other collectors serve now (the
    # textfile collector refuses a file that would shadow one).
    served_families: Callable[[], Collection[str]] = frozenset


Factory = Callable[[CollectorContext], Collector]
Check = Callable[[Any], Any]
"""A config value checker (``agent.config_values``): raw TOML value -> typed
value, or raises ``Invalid``."""


@dataclass(frozen=True)
class CollectorInfo:
    """One collector's declaration: everything the config loader and the
    daemon need to know about it, beside the collector itself.

    ``interval``, ``timeout`` and ``retention`` are the defaults when
    ``[collectors.<name>]`` leaves them unset (None: the ``[telemetry]``
    value; an inherited timeout is clamped to the interval).  ``timeout_for``
    computes the default timeout from the whole config (the ipmi collector's
    follows its slowest BMC); it wins over ``timeout`` when it returns a value.

    ``on_scrape``: a ``/metrics`` scrape runs the collector when its values
    are older than a fraction of a second (node_exporter's model), so
    Prometheus' ``rate()`` and ``irate()`` are right at any scrape interval.
    For cheap collectors whose values feed rates (counters); the others keep
    their interval (docs/architecture.md, "Fresh values for every scrape").

    ``inline``: a scrape runs it on the scrape's own thread rather than
    waking its worker thread, which costs more than most such runs.  Only
    for collectors that read the kernel's own tables (procfs, a syscall, a
    core sysfs attribute): nothing there waits on a device, a BMC or a
    mount, so a run cannot hang the scrape.  Anything else stays isolated on
    its worker.
    """

    name: str
    factory: Factory
    default_enabled: bool = True
    interval: float | None = None
    timeout: float | None = None
    retention: float | None = None
    timeout_for: Callable[[Config], float | None] | None = None
    on_scrape: bool = False
    inline: bool = False
    options: Mapping[str, Check] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def effective(self, ccfg: CollectorConfig, cfg: Config) -> CollectorConfig:
        """``ccfg`` (what the file says) with what it leaves unset filled in
        from this declaration.  What is still None falls back to ``[telemetry]``
        (``CollectorConfig.resolve``)."""
        timeout = ccfg.timeout
        if timeout is None and self.timeout_for is not None:
            timeout = self.timeout_for(cfg)
        return replace(
            ccfg,
            interval=self.interval if ccfg.interval is None else ccfg.interval,
            timeout=self.timeout if timeout is None else timeout,
            retention=self.retention if ccfg.retention is None else ccfg.retention)
