"""``hostagent.v1.Gpu``: validate, resolve the GPU to its UUID, delegate.

ListGpus answers from what the hub last read (it never waits for a GPU);
GetGpu reads the GPU now, through its guard; mutating calls start
operations (``agent.gpu.operations``).  Errors are the domain's, mapped to
status codes by the interceptor.
"""
from __future__ import annotations

import math

from agent.api import gpu_convert as conv
from agent.api.operations_convert import operation_to_proto
from agent.backends.hostfs import HostFS
from agent.errors import InvalidArgument
from agent.gen.hostagent.v1 import gpu_pb2 as pb
from agent.gen.hostagent.v1 import gpu_pb2_grpc as pb_grpc
from agent.gpu import mig
from agent.gpu.hub import GpuHub, GpuTarget
from agent.gpu.operations import refuse_if_busy
from agent.gpu.topology import nearby_nics


class GpuService(pb_grpc.GpuServicer):
    def __init__(self, hub: GpuHub, operations, identify, hostfs: HostFS | None = None) -> None:
        self._hub = hub
        self._ops = operations            # agent.operations.manager.OperationManager
        self._identify = identify         # context -> Identity | None
        self._hostfs = hostfs or HostFS()

    def _who(self, context) -> str:
        who = self._identify(context)
        return who.name if who is not None else ""

    def _start(self, kind: str, request, context, args: dict):
        op = self._ops.start(kind, request.request_id, args, self._who(context))
        return operation_to_proto(op)

    def _target(self, request) -> GpuTarget:
        return self._hub.resolve(request.gpu, "gpu")

    # -- reads -----------------------------------------------------------
    def ListGpus(self, request, context):
        self._hub.require()
        gpus = [conv.status_to_proto(self._hub, t, t.static, nearby_nics(self._hostfs, t.pci_bus_id))
                for t in self._hub.targets.values() if t.static is not None]
        return pb.ListGpusResponse(driver_version=self._hub.driver_version,
                                   cuda_version=self._hub.cuda_version, gpus=gpus)

    def GetGpu(self, request, context):
        t = self._target(request)
        static = t.refresh()
        return conv.status_to_proto(self._hub, t, static, nearby_nics(self._hostfs, t.pci_bus_id))

    # -- operations ------------------------------------------------------
    def SetPersistenceMode(self, request, context):
        t = self._target(request)
        return self._start("gpu.set_persistence_mode", request, context,
                           {"uuid": t.uuid, "on": request.enabled})

    def SetPowerLimit(self, request, context):
        t = self._target(request)
        lo, hi, _ = t.call(lambda d: d.power_limits())
        watts = request.watts
        if not math.isfinite(watts) or not lo <= watts <= hi:
            raise InvalidArgument("watts", f"{watts:g} W is outside this GPU's power limits "
                                  f"({lo:g} to {hi:g} W)")
        return self._start("gpu.set_power_limit", request, context,
                           {"uuid": t.uuid, "watts": watts})

    def SetComputeMode(self, request, context):
        mode = conv.COMPUTE_MODE_NAMES.get(request.mode)
        if mode is None:
            raise InvalidArgument("mode", "must be DEFAULT, EXCLUSIVE_PROCESS or PROHIBITED")
        t = self._target(request)
        return self._start("gpu.set_compute_mode", request, context, {"uuid": t.uuid, "mode": mode})

    def SetEccMode(self, request, context):
        t = self._target(request)
        return self._start("gpu.set_ecc_mode", request, context,
                           {"uuid": t.uuid, "on": request.enabled})

    def SetMigMode(self, request, context):
        t = self._target(request)
        refuse_if_busy(t, "change the MIG mode", request.force)
        return self._start("gpu.set_mig_mode", request, context,
                           {"uuid": t.uuid, "on": request.enabled, "force": request.force})

    def ConfigureMig(self, request, context):
        t = self._target(request)
        instances = []
        for i, spec in enumerate(request.instances):
            if not spec.profile:
                raise InvalidArgument(f"instances[{i}].profile", "required")
            instances.append({"profile": spec.profile, "compute": list(spec.compute_slices)})
        static = t.static
        if static is not None and static.mig_current:  # checked now; again when it runs
            mig.normalize([mig.WantedInstance(w["profile"], tuple(w["compute"])) for w in instances],
                          static.mig_profiles)
        return self._start("gpu.configure_mig", request, context,
                           {"uuid": t.uuid, "instances": instances, "force": request.force})

    def ResetGpu(self, request, context):
        t = self._target(request)
        refuse_if_busy(t, "reset it", request.force)
        return self._start("gpu.reset", request, context, {"uuid": t.uuid, "force": request.force})
