"""The bmc feature's declaration: the BMCs named in ``[bmc]``, watched and
driven over IPMI-over-LAN (docs/bmc.md; the domain is ``agent/bmc/``).

Builds the hub (one guarded worker per BMC) from its config table, and gives
the daemon the BMC operation kinds, the ``hostagent.v1.Bmc`` service, the
ipmi collector (built with the hub) and the BMC part of the inventory.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from agent.bmc.collector import COLLECTOR, IpmiCollector
from agent.bmc.config import SECTION
from agent.bmc.hub import BmcHub
from agent.bmc.operations import bmc_kinds
from agent.feature import (Feature, FeatureContext, FeatureInstance, ServiceBinding,
                           ServiceContext)
from agent.features.lazy import LazyServicer
from agent.gen.hostagent.v1 import bmc_pb2, inventory_pb2
from agent.operations.manager import OperationKind
from agent.telemetry.collector import CollectorContext, CollectorInfo

BMC = bmc_pb2.DESCRIPTOR.services_by_name["Bmc"]


class BmcFeature(FeatureInstance):
    def __init__(self, ctx: FeatureContext) -> None:
        self.hub = BmcHub(ctx.config.section(SECTION), ctx.state_dir, ctx.publish)

    def kinds(self) -> Mapping[str, OperationKind]:
        return bmc_kinds(self.hub)

    def services(self, ctx: ServiceContext) -> Sequence[ServiceBinding]:
        def build():  # at the first call: a start does not import the servicer's modules
            from agent.api.bmc_service import BmcService
            return BmcService(self.hub, ctx.operations, ctx.identify, ctx.role_of)
        return [(LazyServicer(build), BMC)]

    def collectors(self) -> Sequence[CollectorInfo]:
        return [replace(COLLECTOR, factory=self._ipmi)]

    def _ipmi(self, ctx: CollectorContext) -> IpmiCollector:
        return IpmiCollector(ctx, self.hub)

    def add_inventory(self, inventory: inventory_pb2.Inventory) -> None:
        from agent.api.bmc_convert import info_to_proto
        inventory.bmcs.extend(info_to_proto(t, ident) for t, ident in self.hub.identities())

    def close(self) -> None:
        self.hub.close()


FEATURE = Feature(name="bmc", build=BmcFeature, section=SECTION, collectors=(COLLECTOR,))
