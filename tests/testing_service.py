"""A mutating RPC that only the test suite registers, to exercise the
security and operations machinery before the real ones (BMC, GPU, network)
exist.

``hostagent.testing.v1.Mutator`` is declared at run time as a real protobuf
file descriptor, with the same ``required_role``/``mutating`` method options
the production contract uses, so the agent's policy reads it exactly as it
reads ``hostagent.v1``:

- ``Touch(TouchRequest) -> Operation`` (operator): starts a ``test.touch``
  operation that appends one line to ``<dir>/side_effects`` (so tests can count
  how many times it really ran) after ``sleep_ms``.
- ``Wipe(TouchRequest) -> Operation`` (admin): the destructive twin.
"""
from __future__ import annotations

import os
import time

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from agent.feature import Feature, FeatureInstance, ServiceContext
from agent.gen.hostagent.v1 import operations_pb2, options_pb2
from agent.operations.manager import OperationKind

PACKAGE = "hostagent.testing.v1"


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="hostagent/testing/v1/mutator.proto", package=PACKAGE,
                                           syntax="proto3",
                                           dependency=["hostagent/v1/options.proto",
                                                       "hostagent/v1/operations.proto"])
    msg = f.message_type.add(name="TouchRequest")
    for number, name, ftype in ((1, "request_id", 9), (2, "name", 9), (3, "password", 9),
                                (4, "sleep_ms", 13)):
        msg.field.add(name=name, number=number, type=ftype, label=1)
    service = f.service.add(name="Mutator")
    for name, role in (("Touch", options_pb2.ROLE_OPERATOR), ("Wipe", options_pb2.ROLE_ADMIN)):
        method = service.method.add(name=name, input_type=f".{PACKAGE}.TouchRequest",
                                    output_type=".hostagent.v1.Operation")
        method.options.Extensions[options_pb2.required_role] = role
        method.options.Extensions[options_pb2.mutating] = True
    return f


def _load():
    pool = descriptor_pool.Default()
    try:
        fd = pool.FindFileByName("hostagent/testing/v1/mutator.proto")
    except KeyError:
        fd = pool.Add(_file())
        fd = pool.FindFileByName("hostagent/testing/v1/mutator.proto")
    return fd, message_factory.GetMessageClass(fd.message_types_by_name["TouchRequest"])


FILE, TouchRequest = _load()
SERVICE = FILE.services_by_name["Mutator"]
Operation = operations_pb2.Operation


def touch(side_effects: str):
    """The ``test.touch`` run function: sleep, then record one side effect."""
    def run(ctx, args):
        deadline = time.monotonic() + args.get("sleep_ms", 0) / 1000
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.01)
        with open(side_effects, "a") as f:
            f.write(f"{ctx.name} {args['name']}\n")
            f.flush()
            os.fsync(f.fileno())
        return {"touched": args["name"]}
    return run


class _Mutator(FeatureInstance):
    def __init__(self, side_effects: str) -> None:
        self.side_effects = side_effects

    def kinds(self):
        resource = lambda args: f"test/{args['name']}"  # noqa: E731
        return {"test.touch": OperationKind("test.touch", touch(self.side_effects), resource),
                "test.wipe": OperationKind("test.wipe", touch(self.side_effects), resource,
                                           required_role=options_pb2.ROLE_ADMIN)}

    def services(self, ctx: ServiceContext):
        return [(MutatorService(ctx.operations, ctx.identify), SERVICE)]


def mutator_feature(side_effects: str) -> Feature:
    """The ``test.touch``/``test.wipe`` kinds and the Mutator service, as a
    feature the real agent is started with (``serve(plugins=...)``)."""
    return Feature(name="test-mutator", build=lambda ctx: _Mutator(side_effects))


class MutatorService:
    def __init__(self, manager, identify) -> None:
        self._manager = manager
        self._identify = identify

    def _start(self, kind, request, context):
        from agent.api.operations_convert import operation_to_proto
        from agent.errors import InvalidArgument

        if not request.name:
            raise InvalidArgument("name", "must not be empty")
        args = {"name": request.name, "password": request.password, "sleep_ms": request.sleep_ms}
        op = self._manager.start(kind, request.request_id, args, self._identify(context).name)
        return operation_to_proto(op)

    def Touch(self, request, context):
        return self._start("test.touch", request, context)

    def Wipe(self, request, context):
        return self._start("test.wipe", request, context)
