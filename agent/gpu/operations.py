"""The GPU's settings as operation kinds (``agent.operations``): exactly once
per request_id, journaled, one at a time per GPU (resource ``gpu/<uuid>``),
never resumed after an agent restart (a reset or a MIG change is not
replayed blindly: the operation fails ABORTED and the caller decides).

Every kind runs its NVML calls on the GPU's guarded worker, reads the
setting back, and answers with the GPU's UUID and what it reads.  The
servicer has validated the arguments and resolved the GPU to its UUID.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import DeadlineExceeded, FailedPrecondition
from agent.gen.hostagent.v1 import options_pb2
from agent.gpu import mig
from agent.gpu.hub import GpuHub, GpuTarget
from agent.logs import get_logger
from agent.operations.manager import OperationKind

if TYPE_CHECKING:  # the backend loads when NVML is first opened (agent.gpu.hub)
    from agent.backends.nvml import NvmlDevice

log = get_logger(__name__)
OP_TIMEOUT = 60.0  # MIG changes and resets take seconds on real GPUs


def _resource(args) -> str:
    return f"gpu/{args['uuid']}"


def refuse_if_busy(target: GpuTarget, what: str, force: bool) -> None:
    """FAILED_PRECONDITION while compute processes use the GPU, unless ``force``."""
    if force:
        return
    procs = target.call(lambda d: d.processes())
    if procs:
        pids = ", ".join(str(p.pid) for p in procs[:8])
        raise FailedPrecondition(f"GPU {target.uuid} has {len(procs)} compute process(es) "
                                 f"running (pid {pids}); stop them, or set force to {what} anyway")


def set_persistence(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        got = t.call(lambda d: d.set_persistence(args["on"]))
        t.invalidate()
        return {"uuid": t.uuid, "persistence": got}
    return run


def set_power_limit(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        watts = args["watts"]
        got = t.call(lambda d: d.set_power_limit(watts))
        if abs(got - watts) > 0.5:
            raise DeadlineExceeded(f"the GPU did not keep the power limit: asked {watts:g} W, "
                                   f"reads back {got:g} W")
        log.info("gpu.power_limit_set", uuid=t.uuid, watts=got, operation=ctx.name)
        return {"uuid": t.uuid, "power_limit_watts": got}
    return run


def set_compute_mode(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        got = t.call(lambda d: d.set_compute_mode(args["mode"]))
        t.invalidate()
        return {"uuid": t.uuid, "compute_mode": got}
    return run


def set_ecc(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        current, pending = t.call(lambda d: d.set_ecc(args["on"]))
        t.invalidate()
        return {"uuid": t.uuid, "ecc_current": current, "ecc_pending": pending,
                "reset_required": current != pending}
    return run


def set_mig_mode(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        on = args["on"]
        refuse_if_busy(t, "change the MIG mode", args["force"])
        current, pending, needs_reset, why = t.call(lambda d: d.set_mig_mode(on), OP_TIMEOUT)
        t.refresh()
        hub.generation += 1  # MIG devices came or went
        if current != on and not needs_reset:
            raise FailedPrecondition(f"MIG mode {'on' if on else 'off'} is pending, not active: "
                                     f"{why or 'the driver did not activate it'}")
        return {"uuid": t.uuid, "mig_current": current, "mig_pending": pending,
                "reset_required": current != on, "activation": why or "active"}
    return run


def configure_mig(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        static = t.refresh()
        if not static.mig_current:
            raise FailedPrecondition(f"GPU {t.uuid}: MIG mode is not enabled (SetMigMode first)")
        wanted = mig.normalize([mig.WantedInstance(w["profile"], tuple(w["compute"]))
                                for w in args["instances"]], static.mig_profiles)
        todo = mig.plan(static.mig_instances, wanted, static.mig_profiles)
        if todo.empty:
            return {"uuid": t.uuid, "changed": False, "layout": mig.describe(static.mig_instances)}
        refuse_if_busy(t, "change the MIG layout", args["force"])
        profile_ids = {p.name: p.id for p in static.mig_profiles}

        def apply(d: NvmlDevice) -> None:
            for gi in todo.destroy:
                for ci in gi.compute:
                    d.destroy_compute_instance(gi.id, ci.id)
                d.destroy_gpu_instance(gi.id)
            for w in todo.create:
                gi_id = d.create_gpu_instance(profile_ids[w.profile])
                for slices in w.compute:
                    d.create_compute_instance(gi_id, slices)
        try:
            t.call(apply, OP_TIMEOUT)
        finally:
            static = t.refresh()
            hub.generation += 1
        log.info("gpu.mig_configured", uuid=t.uuid, destroyed=len(todo.destroy),
                 created=len(todo.create), operation=ctx.name)
        return {"uuid": t.uuid, "changed": True, "destroyed": len(todo.destroy),
                "created": len(todo.create), "layout": mig.describe(static.mig_instances)}
    return run


def reset(hub: GpuHub):
    def run(ctx, args):
        t = hub.resolve(args["uuid"])
        refuse_if_busy(t, "reset it", args["force"])
        log.warning("gpu.reset", uuid=t.uuid, identity=ctx.identity, operation=ctx.name)
        t.call(lambda d: d.reset(), OP_TIMEOUT)
        static = t.refresh()
        hub.generation += 1
        return {"uuid": t.uuid, "pci_bus_id": static.pci_bus_id, "index": static.index,
                "ecc_current": static.ecc_current, "mig_current": static.mig_current}
    return run


def gpu_kinds(hub: GpuHub) -> dict[str, OperationKind]:
    op, admin = options_pb2.ROLE_OPERATOR, options_pb2.ROLE_ADMIN
    return {k.name: k for k in (
        OperationKind("gpu.set_persistence_mode", set_persistence(hub), _resource, op),
        OperationKind("gpu.set_power_limit", set_power_limit(hub), _resource, op),
        OperationKind("gpu.set_compute_mode", set_compute_mode(hub), _resource, op),
        OperationKind("gpu.set_ecc_mode", set_ecc(hub), _resource, op),
        OperationKind("gpu.set_mig_mode", set_mig_mode(hub), _resource, op),
        OperationKind("gpu.configure_mig", configure_mig(hub), _resource, op),
        OperationKind("gpu.reset", reset(hub), _resource, admin),
    )}
