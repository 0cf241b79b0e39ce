"""The BMC's mutating actions as operation kinds (``agent.operations``):
exactly once per request_id, journaled, one at a time per BMC (resource
``bmc/<target>``), never resumed after an agent restart (a power action is
not replayed blindly; the operation fails ABORTED and the caller decides).

Arguments are plain JSON (what the journal keeps); the servicer has already
validated them and resolved the target name.
"""
from __future__ import annotations

import time

from agent.bmc.hub import BmcHub
from agent.errors import DeadlineExceeded
from agent.gen.hostagent.v1 import options_pb2
from agent.logs import get_logger
from agent.operations.manager import OperationKind

log = get_logger(__name__)
EXPECTED_STATE = {"on": True, "cycle": True, "reset": True, "off": False, "soft": False}
POLL_EVERY = 0.5


def _resource(args) -> str:
    return f"bmc/{args['target']}"


def set_power(hub: BmcHub):
    def run(ctx, args):
        target, action = hub.resolve(args["target"]), args["action"]
        target.call(lambda b: b.chassis_control(action))
        log.info("bmc.power_action_sent", target=target.name, action=action, operation=ctx.name)
        ctx.progress(10, f"chassis control {action} sent; waiting for power "
                         f"{'on' if EXPECTED_STATE[action] else 'off'}")
        deadline = time.monotonic() + args["wait_seconds"]
        want = EXPECTED_STATE[action]
        while True:
            state = target.call(lambda b: b.chassis_status())["power_on"]
            if state == want:
                return {"target": target.name, "action": action,
                        "power_state": "on" if state else "off"}
            if time.monotonic() >= deadline:
                raise DeadlineExceeded(f"{action} sent, but the BMC still reports power "
                                       f"{'on' if state else 'off'} after {args['wait_seconds']:g}s")
            ctx.check_cancelled()
            time.sleep(POLL_EVERY)
    return run


def set_boot(hub: BmcHub):
    def run(ctx, args):
        target = hub.resolve(args["target"])
        device, persistent, uefi = args["device"], args["persistent"], args["uefi"]
        target.call(lambda b: b.set_boot(device, persistent, uefi))
        got = target.call(lambda b: b.boot_setting())
        if got.device != device or (device != "default" and got.persistent != persistent):
            raise DeadlineExceeded(f"the BMC did not keep the boot device: asked {device} "
                                   f"(persistent={persistent}), reads back {got.device} "
                                   f"(persistent={got.persistent})")
        return {"target": target.name, "device": got.device, "persistent": got.persistent,
                "uefi": got.uefi}
    return run


def identify(hub: BmcHub):
    def run(ctx, args):
        target = hub.resolve(args["target"])
        target.call(lambda b: b.identify(args["on"], args["seconds"] or None))
        return {"target": target.name, "on": args["on"], "seconds": args["seconds"]}
    return run


def clear_sel(hub: BmcHub):
    def run(ctx, args):
        target = hub.resolve(args["target"])
        before = target.call(lambda b: b.sel_info()).entries
        target.call(lambda b: b.clear_sel())
        log.warning("bmc.sel_cleared", target=target.name, entries=before, identity=ctx.identity)
        return {"target": target.name, "cleared_entries": before}
    return run


def bmc_kinds(hub: BmcHub) -> dict[str, OperationKind]:
    op, admin = options_pb2.ROLE_OPERATOR, options_pb2.ROLE_ADMIN
    return {k.name: k for k in (
        OperationKind("bmc.set_power", set_power(hub), _resource, op),
        OperationKind("bmc.set_boot_device", set_boot(hub), _resource, op),
        OperationKind("bmc.set_identify", identify(hub), _resource, op),
        OperationKind("bmc.clear_event_log", clear_sel(hub), _resource, admin),
    )}
