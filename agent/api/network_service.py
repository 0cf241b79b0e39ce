"""``hostagent.v1.Network``: validate, authorize ``force``, delegate.

The desired state arrives as nmstate text and is parsed and validated (by
the engine's planner) before anything starts, so a bad config is
INVALID_ARGUMENT naming the field and no operation.  Mutating calls start
operations (kinds in ``agent/features/network_control.py``); the control
object answers FAILED_PRECONDITION while another change runs or awaits
confirmation.  Errors are the domain's, mapped to status codes by the
interceptor.
"""
from __future__ import annotations

from agent.api import network_convert as conv
from agent.api.convert import duration_seconds
from agent.api.operations_convert import operation_to_proto
from agent.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from agent.gen.hostagent.v1 import network_pb2 as pb
from agent.gen.hostagent.v1 import network_pb2_grpc as pb_grpc
from agent.network.nmstate import MAX_DOCUMENT
from agent.operations.manager import check_request_id
from agent.security.policy import Role

MAX_CONFIRM = 3600.0
MIN_CONFIRM = 1.0
MAX_DESIRED = MAX_DOCUMENT  # characters of nmstate text, checked before anything parses it


class NetworkService(pb_grpc.NetworkServicer):
    def __init__(self, control, operations, identify, role_of) -> None:
        # control: agent.features.network_control.NetworkControl, or None when
        # `[network] enabled = false` (every call then says so).
        self._control = control
        self._ops = operations            # agent.operations.manager.OperationManager
        self._identify = identify         # context -> Identity | None
        self._role_of = role_of           # identity name -> Role

    def _who(self, context) -> str:
        who = self._identify(context)
        return who.name if who is not None else ""

    def _on(self):
        if self._control is None:
            raise FailedPrecondition("network management is off on this agent "
                                     "([network] enabled = false)")
        return self._control

    def _start(self, kind: str, request, context, args: dict, check_busy: bool):
        control = self._on()
        check_request_id(request.request_id)
        with control.gate():
            if check_busy and control.existing(kind, request.request_id) is None:
                control.refuse_if_busy()
            op = self._ops.start(kind, request.request_id, args, self._who(context))
        return operation_to_proto(op)

    # -- reads -----------------------------------------------------------
    def GetNetworkState(self, request, context):
        control = self._on()
        engine = control.engine
        live, managed = engine.live(), engine.managed()
        if request.managed_only:
            live = conv.only_managed(live, managed)
        return conv.state_to_proto(live, managed, control.protected, engine.awaiting_confirmation())

    # -- operations ------------------------------------------------------
    def ApplyNetworkConfig(self, request, context):
        control = self._on()
        if len(request.desired) > MAX_DESIRED:
            raise InvalidArgument("desired", f"{len(request.desired)} characters; at most {MAX_DESIRED}")
        if not request.desired.strip():
            raise InvalidArgument("desired", "required: nmstate YAML or JSON text")
        timeout = duration_seconds(request.confirm_timeout, "confirm_timeout", MAX_CONFIRM)
        if timeout and timeout < MIN_CONFIRM:
            raise InvalidArgument("confirm_timeout", f"must be at least {MIN_CONFIRM:g}s (or unset)")
        if request.force and self._role_of(self._who(context)) < Role.ADMIN:
            raise PermissionDenied("force: changing protected interfaces, or the one carrying "
                                   "the caller's connection, needs the admin role")
        desired = conv.parse_desired(request.desired)
        try:
            plan = control.engine.plan(desired)  # validates everything before any change
        except InvalidArgument as exc:
            raise conv.in_desired(exc) from None
        answer = pb.ApplyNetworkConfigResponse(plan=conv.plan_to_proto(plan))
        if request.dry_run:
            return answer
        args = {"desired": request.desired, "confirm_timeout": timeout, "force": request.force,
                "protected": control.protected_for(context.peer())}
        answer.operation.CopyFrom(self._start("network.apply", request, context, args, check_busy=True))
        return answer

    def ConfirmNetworkConfig(self, request, context):
        return self._start("network.confirm", request, context, {}, check_busy=False)

    def RollbackNetworkConfig(self, request, context):
        return self._start("network.rollback", request, context, {}, check_busy=False)
