"""The gpu feature's declaration: the node's NVIDIA GPUs through NVML
(docs/gpu.md; the domain is ``agent/gpu/``, the backend
``agent/backends/nvml*.py``).

Builds the hub (one guarded worker per GPU) from its config table, starts
the XID watcher, and gives the daemon the GPU operation kinds, the
``hostagent.v1.Gpu`` service, the gpu collector (built with the hub) and the
GPU part of the inventory.

A start opens no NVML and imports no backend (pynvml and the NVML model
load at the first open, ``agent.gpu.hub``); the servicer and the
inventory's converter are imported at their first use.  The XID watcher
starts once the gpu collector's first run (right after the agent serves)
has opened NVML, or at once when that collector is disabled.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from agent.backends.hostfs import HostFS
from agent.feature import (Feature, FeatureContext, FeatureInstance, ServiceBinding,
                           ServiceContext)
from agent.features.lazy import LazyServicer
from agent.gen.hostagent.v1 import gpu_pb2, inventory_pb2
from agent.gpu.collector import COLLECTOR, GpuCollector
from agent.gpu.config import SECTION
from agent.gpu.events import XidWatcher
from agent.gpu.hub import GpuHub
from agent.gpu.operations import gpu_kinds
from agent.operations.manager import OperationKind
from agent.telemetry.collector import CollectorContext, CollectorInfo

GPU = gpu_pb2.DESCRIPTOR.services_by_name["Gpu"]


class GpuFeature(FeatureInstance):
    def __init__(self, ctx: FeatureContext) -> None:
        self.hub = GpuHub(ctx.config.section(SECTION), ctx.state_dir, ctx.publish)
        self.hostfs = HostFS()
        self.watcher = XidWatcher(self.hub, ctx.publish)
        collector = ctx.config.collectors.get(COLLECTOR.name)
        if collector is not None and collector.enabled:
            self.hub.on_open(self.watcher.start)  # NVML opened off the start's path
        else:
            self.watcher.start()  # nobody else opens NVML soon: the watcher does

    def kinds(self) -> Mapping[str, OperationKind]:
        return gpu_kinds(self.hub)

    def services(self, ctx: ServiceContext) -> Sequence[ServiceBinding]:
        def build():
            from agent.api.gpu_service import GpuService  # its convert module loads the NVML model
            return GpuService(self.hub, ctx.operations, ctx.identify, self.hostfs)
        return [(LazyServicer(build), GPU)]

    def collectors(self) -> Sequence[CollectorInfo]:
        return [replace(COLLECTOR, factory=self._gpu)]

    def _gpu(self, ctx: CollectorContext) -> GpuCollector:
        return GpuCollector(ctx, self.hub)

    def add_inventory(self, inventory: inventory_pb2.Inventory) -> None:
        # What the hub knows; the inventory never waits for a GPU.
        from agent.api.gpu_convert import info_to_proto
        from agent.gpu.topology import nearby_nics
        for t in self.hub.targets.values():
            if t.static is not None:
                inventory.gpus.append(info_to_proto(self.hub, t, t.static,
                                                    nearby_nics(self.hostfs, t.pci_bus_id)))

    def close(self) -> None:
        self.watcher.stop()
        self.hub.close()


FEATURE = Feature(name="gpu", build=GpuFeature, section=SECTION, collectors=(COLLECTOR,))
