"""The flows feature's declaration: packet sampling and per-flow, per-VM
traffic accounting (docs/flows.md; the domain is ``agent/flows/``, the
backend ``agent/backends/packet_ring.py``, the kernel ``agent.core``'s
``FlowTable``).

With ``[sampling] interfaces`` set, builds the hub and starts the sampler
thread (and the sFlow exporter when collectors are listed); gives the daemon
the ``hostagent.v1.Flows`` service and the flows collector.  Without, the
service answers FAILED_PRECONDITION and the collector reports itself absent.
"""
from __future__ import annotations

import errno
from dataclasses import replace
from typing import Sequence

from agent import core
from agent.api.streams import StreamGate
from agent.feature import Feature, FeatureContext, FeatureInstance, ServiceBinding, ServiceContext
from agent.features.lazy import LazyServicer
from agent.flows.collector import COLLECTOR, FlowsCollector
from agent.flows.config import SECTION
from agent.flows.hub import FlowHub
from agent.gen.hostagent.v1 import flows_pb2
from agent.logs import get_logger
from agent.telemetry.collector import CollectorContext, CollectorInfo

FLOWS = flows_pb2.DESCRIPTOR.services_by_name["Flows"]
log = get_logger(__name__)


class FlowsFeature(FeatureInstance):
    def __init__(self, ctx: FeatureContext) -> None:
        cfg = ctx.config.section(SECTION)
        self.hub: FlowHub | None = None
        self.sampler = None  # agent.flows.sampler.Sampler, with [sampling]
        self.streams: StreamGate | None = None  # WatchFlows' streams, with the servicer
        if not cfg.enabled:
            return
        # Only with [sampling]: the sampler, the exporter and what they load.
        from agent.flows.exporter import SflowExporter
        from agent.flows.sampler import Sampler
        self.hub = FlowHub(cfg.max_flows, cfg.retention)
        exporter = (SflowExporter(cfg.collectors, cfg.agent_address, cfg.sub_agent_id)
                    if cfg.collectors else None)
        self.sampler = Sampler(cfg, self.hub, core.FlowTable(cfg.max_flows), core.parse_frame, exporter)
        try:
            self.sampler.start()
        except OSError as exc:
            hint = (" (packet sockets need CAP_NET_RAW and AF_PACKET: under systemd, install the "
                    "drop-in systemd/sampling.conf; docs/flows.md, \"systemd\")"
                    if exc.errno in (errno.EPERM, errno.EACCES, errno.EAFNOSUPPORT) else "")
            raise OSError(exc.errno, f"[sampling] cannot sample {', '.join(cfg.interfaces)}"
                          f"{' in namespace ' + cfg.namespace if cfg.namespace else ''}: "
                          f"{exc.strerror or exc}{hint}", exc.filename) from exc
        log.info("flows.started", interfaces=",".join(cfg.interfaces), namespace=cfg.namespace,
                 rate=cfg.rate or "by-speed", collectors=len(cfg.collectors),
                 kernel=core.FLOWS_IMPLEMENTATION)

    def services(self, ctx: ServiceContext) -> Sequence[ServiceBinding]:
        def build():  # at the first call: a start does not import the servicer's modules
            from agent.api.flows_service import WATCH_LIMIT, FlowsService
            self.streams = StreamGate(WATCH_LIMIT)
            return FlowsService(self.hub, self.streams)
        return [(LazyServicer(build), FLOWS)]

    def collectors(self) -> Sequence[CollectorInfo]:
        return [replace(COLLECTOR, factory=self._flows)]

    def _flows(self, ctx: CollectorContext) -> FlowsCollector:
        return FlowsCollector(ctx, self.hub)

    def close(self) -> None:
        if self.streams is not None:
            self.streams.close_all()
        if self.sampler is not None:
            self.sampler.close()


FEATURE = Feature(name="flows", build=FlowsFeature, section=SECTION, collectors=(COLLECTOR,))
