"""``hostagent.v1.Flows``: validate the query, ask the hub, convert.

Both calls read the hub (``agent.flows.hub``), which the sampler updates
about once a second under a short lock; nothing here waits for the sampler.
WatchFlows streams hold a gRPC worker thread each, so they have their own
small limit (``WATCH_LIMIT``); one more is RESOURCE_EXHAUSTED at once.
"""
from __future__ import annotations

import ipaddress

from agent.api import flows_convert as conv
from agent.api.streams import StreamGate
from agent.errors import FailedPrecondition, InvalidArgument, quote
from agent.flows.hub import FlowFilter, FlowHub
from agent.gen.hostagent.v1 import flows_pb2 as pb
from agent.gen.hostagent.v1 import flows_pb2_grpc as pb_grpc

DEFAULT_TOP, MAX_TOP = 20, 10_000
DEFAULT_INTERVAL, MIN_INTERVAL = 5.0, 1.0
WATCH_LIMIT = 2  # the daemon keeps 4 gRPC workers free of its own streams; these take at most 2


class FlowsService(pb_grpc.FlowsServicer):
    def __init__(self, hub: FlowHub | None, streams: StreamGate | None = None) -> None:
        self._hub = hub  # None: [sampling] is off on this node
        self._streams = streams or StreamGate(WATCH_LIMIT)

    def _require(self) -> FlowHub:
        if self._hub is None:
            raise FailedPrecondition("packet sampling is off: no [sampling] interfaces in the config")
        return self._hub

    def _query(self, req, prefix: str = ""):
        hub = self._require()
        window = req.window.ToNanoseconds() / 1e9 if req.HasField("window") else 0.0
        if window < 0:
            raise InvalidArgument(f"{prefix}window", "must not be negative")
        if window > hub.retention:
            raise InvalidArgument(f"{prefix}window", f"{window:g}s exceeds the retention of "
                                                      f"{hub.retention:g}s ([sampling] retention)")
        top = req.top or DEFAULT_TOP
        if top > MAX_TOP:
            raise InvalidArgument(f"{prefix}top", f"{top} is more than {MAX_TOP}")
        if req.order not in pb.FlowOrder.values():
            raise InvalidArgument(f"{prefix}order", f"unknown order {req.order}")
        f = req.filter
        if f.address:
            try:
                ipaddress.ip_network(f.address, strict=False)
            except ValueError:
                raise InvalidArgument(f"{prefix}filter.address",
                                      f"{quote(f.address)} is not an IP address or CIDR prefix") from None
        if f.vni >= 1 << 24:
            raise InvalidArgument(f"{prefix}filter.vni", f"{f.vni} is not a 24-bit VNI")
        if len(f.interface) > 64:
            raise InvalidArgument(f"{prefix}filter.interface", f"{quote(f.interface)} is not an interface name or glob")
        flt = FlowFilter(interface=f.interface, instance=f.instance,
                         vni=f.vni if f.has_vni else None, address=f.address)
        by_packets = req.order == pb.FLOW_ORDER_PACKETS
        return lambda: conv.answer_to_proto(hub.query(window or hub.retention, top, by_packets, flt),
                                            hub.interfaces())

    def ListFlows(self, request, context):
        return self._query(request)()

    def WatchFlows(self, request, context):
        answer = self._query(request.query, "query.")
        interval = request.interval.ToNanoseconds() / 1e9 if request.HasField("interval") else 0.0
        interval = interval or DEFAULT_INTERVAL
        if interval < MIN_INTERVAL:
            raise InvalidArgument("interval", f"must be at least {MIN_INTERVAL:g}s")
        with self._streams.open(context) as stream:
            while stream.active:
                yield answer()
                stream.sleep(interval)

    def close(self) -> None:
        self._streams.close_all()
