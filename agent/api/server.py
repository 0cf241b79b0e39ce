"""Builds the gRPC server: our services, health and reflection, and the
interceptors.  Listeners are added by ``agent.security.access`` (mutual TLS,
the unix socket's peer-credential proxy)."""
from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection

from agent.api.interceptors import ErrorInterceptor

from agent.gen.hostagent.v1 import inventory_pb2, telemetry_pb2

TELEMETRY = telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"]
INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["Inventory"]
MAX_MESSAGE_BYTES = 16 * 1024 * 1024   # responses (a 100k-series snapshot fits)
# No request carries bulk data: the largest are selectors of a few hundred
# names.  Bigger ones are refused (RESOURCE_EXHAUSTED) by gRPC before any
# parsing or buffering in Python.
MAX_RECEIVE_BYTES = 256 * 1024


class HealthService(health.HealthServicer):
    """grpc's health servicer plus ``List``, which grpc.health.v1 defines
    but the library answers UNIMPLEMENTED: a client can see every service's
    status in one call."""

    def __init__(self) -> None:
        super().__init__(experimental_non_blocking=True)
        self._statuses: dict[str, int] = {}
        self._statuses_lock = threading.Lock()

    def set(self, service: str, status) -> None:
        with self._statuses_lock:
            self._statuses[service] = status
        super().set(service, status)

    def List(self, request, context):
        with self._statuses_lock:
            statuses = dict(self._statuses)
        return health_pb2.HealthListResponse(statuses={
            name: health_pb2.HealthCheckResponse(status=status) for name, status in statuses.items()})


@dataclass
class GrpcServer:
    server: grpc.Server
    health: health.HealthServicer
    service_names: tuple[str, ...] = ()
    addresses: list[str] = field(default_factory=list)

    def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("",) + self.service_names:
            self.health.set(name, status)


def _serialize(message) -> bytes:
    """Responses may be messages or wire bytes already encoded (agent.api.encode)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def add_service(server: grpc.Server, servicer, service: ServiceDescriptor) -> None:
    """Register ``servicer`` for every method of ``service``, from the
    descriptor (what the generated ``add_*_to_server`` does, but with a
    serializer that accepts pre-encoded bytes)."""
    handlers = {}
    for method in service.methods:
        if method.client_streaming:
            raise NotImplementedError(f"{method.full_name}: client streaming")
        request = message_factory.GetMessageClass(method.input_type)
        make = (grpc.unary_stream_rpc_method_handler if method.server_streaming
                else grpc.unary_unary_rpc_method_handler)
        handlers[method.name] = make(getattr(servicer, method.name),
                                     request_deserializer=request.FromString,
                                     response_serializer=_serialize)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def build_server(services: list[tuple[object, ServiceDescriptor]], max_workers: int,
                 interceptors: tuple[grpc.ServerInterceptor, ...] = (),
                 max_concurrent_rpcs: int | None = None) -> GrpcServer:
    """``services`` are (servicer, descriptor) pairs.  ``interceptors`` run
    outermost first, before the error interceptor; calls beyond
    ``max_concurrent_rpcs`` get RESOURCE_EXHAUSTED at once.  gRPC counts a
    call queued for a worker as in flight, so the limit is at most
    ``max_workers`` (the default): no accepted call waits for a thread."""
    limit = min(max_concurrent_rpcs or max_workers, max_workers)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[*interceptors, ErrorInterceptor()],
        maximum_concurrent_rpcs=limit,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.so_reuseport", 0)])
    for servicer, descriptor in services:
        add_service(server, servicer, descriptor)
    names = tuple(d.full_name for _, d in services)
    health_servicer = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(names + (health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    grpc_server = GrpcServer(server, health_servicer, names)
    grpc_server.set_serving(False)
    return grpc_server
