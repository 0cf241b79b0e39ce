"""What a feature declares, and what the daemon gives it.

A feature brings a backend and what is built on it: its config table, the
object that owns its hardware (a hub), its operation kinds, its gRPC
service(s), its collectors, its inventory part (BMC today; GPU and network
next).  It is declared once (``agent/features/bmc.py``) and registered with
one line in ``agent/features/__init__.py``; the daemon loops over
features and names none of them.  The test suite adds its test-only service
the same way (``tests/testing_service.py``).

Two stages, because the config is read before anything runs:

- :class:`Feature`, the declaration: a plain value the config loader reads
  (its table, the collectors it declares) without building anything;
- :class:`FeatureInstance`, what ``Feature.build`` returns at start: it owns
  what the feature opened and gives the daemon its kinds, services and
  collectors (built with what it owns, e.g. the ipmi collector with the BMC
  hub).  Closed at stop, after its collectors and services.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from agent.config import Config
from agent.config_values import ConfigSection
from agent.gen.hostagent.v1 import inventory_pb2
from agent.operations.manager import OperationKind, OperationManager
from agent.security.identity import Identity
from agent.security.policy import Role
from agent.telemetry.collector import CollectorInfo
from agent.telemetry.events import Publish

ServiceBinding = tuple[object, ServiceDescriptor]
"""A servicer and the service it implements, as ``api.server.build_server`` takes them."""


@dataclass(frozen=True)
class FeatureContext:
    """What a feature is built from at start."""

    config: Config
    state_dir: str  # its files go here (e.g. ``bmc-<target>.sel.json``)
    publish: Publish  # WatchEvents


@dataclass(frozen=True)
class ServiceContext:
    """What a feature's servicers may use: the operations manager (mutating
    calls are operations) and the caller's identity and role."""

    operations: OperationManager
    identify: Callable[[grpc.ServicerContext], Identity | None]
    role_of: Callable[[str], Role]  # identity name -> role, under the policy in force


class FeatureInstance:
    """A built feature.  Override what the feature has; the rest is empty."""

    def kinds(self) -> Mapping[str, OperationKind]:
        """Operation kinds, by name (``bmc.set_power``)."""
        return {}

    def services(self, ctx: ServiceContext) -> Sequence[ServiceBinding]:
        return ()

    def collectors(self) -> Sequence[CollectorInfo]:
        """The declared collectors, built with what this instance owns.  A
        declared collector not given here is built from its declaration."""
        return ()

    def add_inventory(self, inventory: inventory_pb2.Inventory) -> None:
        """Add this feature's part to a ``GetInventory`` answer."""

    def close(self) -> None:
        """Release what ``build`` opened (workers, sessions)."""


@dataclass(frozen=True)
class Feature:
    """One feature's declaration.  ``section``: its top-level config table
    (changes to it apply at the next start); ``collectors``: the collectors
    it brings, so ``[collectors.<name>]`` is validated before it is built."""

    name: str
    build: Callable[[FeatureContext], FeatureInstance]
    section: ConfigSection | None = None
    collectors: tuple[CollectorInfo, ...] = ()
