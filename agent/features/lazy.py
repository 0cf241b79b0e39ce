"""Servicers built at their first call, so that a start does not import
what only a call needs (docs/benchmarks.md, "Start-up").  The service is
registered, reflected and answered from the start as any other: only the
object behind it (and its modules) waits for a caller.

Here, in the features' layer, because both the features (their servicers'
convert modules load their backends' models) and the daemon (Operations,
Inventory) use it.
"""
from __future__ import annotations

import threading

from agent.backends.hostfs import HostFS


class LazyServicer:
    """A servicer built at its first call (``build()`` makes the real one):
    what its module imports is then not paid for by every start.  gRPC looks
    each method up once, at registration; each forwards to the real one."""

    def __init__(self, build) -> None:
        self._build = build
        self._service = None
        self._lock = threading.Lock()

    def _real(self):
        with self._lock:
            if self._service is None:
                self._service = self._build()
            return self._service

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda request, context: getattr(self._real(), name)(request, context)


class LazyInventory(LazyServicer):
    """The Inventory servicer: the inventory's code imports pyroute2 and
    psutil, a tenth of a second a start does not need."""

    def __init__(self, hostfs: HostFS, extend) -> None:
        def build():
            from agent.api.inventory_service import InventoryService
            from agent.inventory import InventoryCache
            return InventoryService(InventoryCache(hostfs), extend)
        super().__init__(build)
