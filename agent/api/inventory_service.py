"""``hostagent.v1.Inventory``: the cached inventory, converted."""
from __future__ import annotations

from typing import Callable

from agent.api.inventory_convert import inventory_to_proto
from agent.gen.hostagent.v1 import inventory_pb2 as pb
from agent.gen.hostagent.v1 import inventory_pb2_grpc as pb_grpc


class InventoryService(pb_grpc.InventoryServicer):
    def __init__(self, cache, extend: Callable[[pb.Inventory], None] = lambda inventory: None) -> None:
        self._cache = cache  # agent.inventory.InventoryCache
        # Adds the features' parts (the BMCs that answered, from the BMC hub's cache).
        self._extend = extend

    def GetInventory(self, request, context):
        inventory = inventory_to_proto(self._cache.get(request.refresh))
        self._extend(inventory)
        return pb.GetInventoryResponse(inventory=inventory)
