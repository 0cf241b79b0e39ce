"""``hostagent.v1.Inventory``: the cached inventory, converted."""
from __future__ import annotations

from agent.api.inventory_convert import inventory_to_proto
from agent.gen.hostagent.v1 import inventory_pb2 as pb
from agent.gen.hostagent.v1 import inventory_pb2_grpc as pb_grpc


class InventoryService(pb_grpc.InventoryServicer):
    def __init__(self, cache, bmcs=lambda: []) -> None:
        self._cache = cache  # agent.inventory.InventoryCache
        self._bmcs = bmcs    # () -> [hostagent.v1.BmcInfo]: those that answered, from the BMC hub's cache

    def GetInventory(self, request, context):
        inventory = inventory_to_proto(self._cache.get(request.refresh))
        inventory.bmcs.extend(self._bmcs())
        return pb.GetInventoryResponse(inventory=inventory)
