"""``hostagent.v1.Bmc``: validate, authorize the power-off guard, delegate.

Reads go to the BMC now, through its guard (timeout, circuit breaker);
mutating calls start operations (``agent.bmc.operations``).  Errors are the
domain's (NotFound, Unavailable, InvalidArgument...), mapped to status codes
by the interceptor.
"""
from __future__ import annotations

import time

from agent.api import bmc_convert as conv
from agent.api.convert import duration_seconds
from agent.api.operations_convert import operation_to_proto
from agent.bmc.hub import BmcHub
from agent.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from agent.gen.hostagent.v1 import bmc_pb2 as pb
from agent.gen.hostagent.v1 import bmc_pb2_grpc as pb_grpc
from agent.security.policy import Role

MAX_WAIT = 3600.0
DEFAULT_WAIT = 60.0


def _seconds(d, field: str, default: float, maximum: float) -> float:
    return duration_seconds(d, field, maximum) or default


class BmcService(pb_grpc.BmcServicer):
    def __init__(self, hub: BmcHub, operations, identify, role_of) -> None:
        self._hub = hub
        self._ops = operations            # agent.operations.manager.OperationManager
        self._identify = identify         # context -> Identity | None
        self._role_of = role_of           # identity name -> Role

    def _who(self, context) -> str:
        who = self._identify(context)
        return who.name if who is not None else ""

    def _start(self, kind: str, request, context, args: dict):
        op = self._ops.start(kind, request.request_id, args, self._who(context))
        return operation_to_proto(op)

    # -- reads -----------------------------------------------------------
    def ListBmcs(self, request, context):
        return pb.ListBmcsResponse(bmcs=[conv.status_to_proto(t) for t in self._hub.targets.values()])

    def GetPowerState(self, request, context):
        t = self._hub.resolve(request.target)
        return conv.power_to_proto(t.name, t.call(lambda b: b.chassis_status())["power_on"])

    def GetBootDevice(self, request, context):
        t = self._hub.resolve(request.target)
        return conv.boot_to_proto(t.name, t.call(lambda b: b.boot_setting()))

    def GetSensors(self, request, context):
        t = self._hub.resolve(request.target)
        sensors = t.call(lambda b: b.sensors())
        return pb.GetSensorsResponse(target=t.name, sensors=[conv.sensor_to_proto(s) for s in sensors],
                                     read_time=conv.timestamp(time.time()))

    def GetEventLog(self, request, context):
        t = self._hub.resolve(request.target)

        def read(b):
            info, entries, record = b.sel_info(), [], 0
            while record != 0xFFFF and len(entries) < max(info.entries, 1) + 16:
                got = b.sel_entry(record)
                if got is None:
                    break
                record, entry = got
                entries.append(entry)
            return info, entries
        info, entries = t.call(read)
        if request.max_entries:
            entries = entries[-request.max_entries:]
        return pb.GetEventLogResponse(target=t.name, entries=[conv.sel_to_proto(e) for e in entries],
                                      total_entries=info.entries, free_bytes=info.free_bytes)

    def GetBmcInfo(self, request, context):
        t = self._hub.resolve(request.target)
        ident = t.call(lambda b: b.identity())
        t.identity = ident
        return conv.info_to_proto(t, ident)

    # -- operations ------------------------------------------------------
    def SetPowerState(self, request, context):
        action = conv.POWER_ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument("action", "must be ON, OFF, SOFT, CYCLE or RESET")
        wait = _seconds(request.wait_timeout, "wait_timeout", DEFAULT_WAIT, MAX_WAIT)
        t = self._hub.resolve(request.target)
        if t.local and action != "on":
            if not request.force:
                raise FailedPrecondition(f"target {t.name} is the BMC of this agent's own host: "
                                         f"power {action} would take the agent down; set force "
                                         "(admin only) to do it anyway")
            if self._role_of(self._who(context)) < Role.ADMIN:
                raise PermissionDenied(f"force: powering {action} the agent's own host needs "
                                       "the admin role")
        return self._start("bmc.set_power", request, context,
                           {"target": t.name, "action": action, "wait_seconds": wait,
                            "force": request.force})

    def SetBootDevice(self, request, context):
        device = conv.BOOT_DEVICES.get(request.device)
        if device is None:
            raise InvalidArgument("device", "must be DEFAULT, PXE, DISK, CDROM or BIOS_SETUP")
        if request.mode not in (pb.BOOT_MODE_UNSPECIFIED, pb.BOOT_MODE_LEGACY, pb.BOOT_MODE_UEFI):
            raise InvalidArgument("mode", "must be LEGACY or UEFI")
        t = self._hub.resolve(request.target)
        return self._start("bmc.set_boot_device", request, context,
                           {"target": t.name, "device": device, "persistent": request.persistent,
                            "uefi": request.mode == pb.BOOT_MODE_UEFI})

    def SetIdentify(self, request, context):
        seconds = _seconds(request.duration, "duration", 0.0, 255.0)
        if seconds and not request.on:
            raise InvalidArgument("duration", "only with on")
        if seconds and seconds < 1:
            raise InvalidArgument("duration", "must be at least 1s (or unset: until turned off)")
        t = self._hub.resolve(request.target)
        return self._start("bmc.set_identify", request, context,
                           {"target": t.name, "on": request.on, "seconds": int(seconds)})

    def ClearEventLog(self, request, context):
        t = self._hub.resolve(request.target)
        return self._start("bmc.clear_event_log", request, context, {"target": t.name})
