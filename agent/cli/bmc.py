"""``hostagent bmc``: the node's BMC through the agent (``hostagent.v1.Bmc``).

Reads print a table or a line (``--json``: the response message).  Mutating
actions start an operation, wait for it to end and print its result
(:mod:`agent.cli.operation`, shared with ``hostagent gpu``).

``-t/--target`` names the BMC (a ``[[bmc.targets]]`` name; default the local
or only one); the agent is ``--agent``, reached as every client command
reaches it (:mod:`agent.cli.client`).  Exit codes: 0 ok, 1 failed (operation
failed, BMC down, unknown target), 2 usage error, 3 agent unreachable.
"""
from __future__ import annotations

from google.protobuf import json_format

from agent.cli import operation
from agent.cli.client import add_connection_options, add_request_id_option
from agent.cli.commands import help_of
from agent.cli.display import number, print_json, table, utc
from agent.cli.exits import EXIT_FAILED, UsageError
from agent.gen.hostagent.v1 import bmc_pb2 as pb
from agent.gen.hostagent.v1 import bmc_pb2_grpc
from agent.gen.hostagent.v1 import telemetry_pb2

POWER_ACTIONS = {"on": pb.POWER_ACTION_ON, "off": pb.POWER_ACTION_OFF, "soft": pb.POWER_ACTION_SOFT,
                 "cycle": pb.POWER_ACTION_CYCLE, "reset": pb.POWER_ACTION_RESET}
BOOT_DEVICES = {"pxe": pb.BOOT_DEVICE_PXE, "disk": pb.BOOT_DEVICE_DISK, "cdrom": pb.BOOT_DEVICE_CDROM,
                "bios-setup": pb.BOOT_DEVICE_BIOS_SETUP, "default": pb.BOOT_DEVICE_DEFAULT}
_BOOT_NAMES = {v: k for k, v in BOOT_DEVICES.items()}


def add_parser(sub) -> None:
    bmc = sub.add_parser("bmc", help=help_of("bmc"),
                         description="The BMCs the agent watches ([[bmc.targets]]), "
                         "through the agent.  Actions that change something wait for the agent's "
                         "operation to end and exit 0 only when it succeeded.  Exit codes: 0 ok, 1 "
                         "failed (or a BMC down, for list), 2 usage error, 3 agent unreachable.")
    bmc_sub = bmc.add_subparsers(dest="bmc_command", required=True, metavar="ACTION")

    def cmd(name: str, help_text: str, func, target: bool = True, mutating: bool = False):
        p = bmc_sub.add_parser(name, help=help_text, description=help_text)
        if target:
            p.add_argument("-t", "--target", dest="bmc", metavar="BMC", default="",
                           help="BMC target name from the agent config (default: the local BMC, "
                                "or the only one)")
        if mutating:
            add_request_id_option(p)
        add_connection_options(p)
        p.set_defaults(func=func)
        return p

    cmd("list", "the configured BMCs and whether each answers", bmc_list, target=False)
    cmd("sensors", "every sensor with its reading and health, read now", bmc_sensors)
    power = cmd("power", "print the power state (on/off), or power on, off, soft (ACPI), cycle, "
                "reset and wait until the BMC reports the new state", bmc_power, mutating=True)
    power.add_argument("action", nargs="?", choices=("on", "off", "soft", "cycle", "reset"),
                       help="omit to print the current state")
    power.add_argument("--force", action="store_true", help="allow taking the agent's own host "
                       "down (a local target; admin only)")
    power.add_argument("--wait-timeout", metavar="DURATION",
                       help="how long the agent waits for the new state, e.g. 90s (default 60s)")
    boot = cmd("bootdev", "print the boot device override, or set it (read back to check)",
               bmc_bootdev, mutating=True)
    boot.add_argument("device", nargs="?", choices=("pxe", "disk", "cdrom", "bios-setup", "default"),
                      help="omit to print the current override; default removes it")
    boot.add_argument("--persistent", action="store_true", help="every boot, not just the next")
    boot.add_argument("--uefi", action="store_true", help="UEFI boot (default legacy BIOS)")
    ident = cmd("identify", "turn the chassis identify LED on or off", bmc_identify, mutating=True)
    ident.add_argument("state", choices=("on", "off"))
    ident.add_argument("--seconds", type=int, metavar="N",
                       help="with on: for N seconds, 1-255 (default: until turned off)")
    sel = cmd("sel", "the system event log, oldest first; 'clear' empties it (admin)", bmc_sel,
              mutating=True)
    sel.add_argument("action", nargs="?", choices=("clear",), help="omit to print the log")
    sel.add_argument("--last", type=int, metavar="N", help="only the newest N entries")
    cmd("info", "the BMC's identity: firmware, GUID, manufacturer, FRU", bmc_info)


def _enum(name: str, prefix: str, ok: tuple[str, ...] = ("ok", "info")) -> str:
    """``SENSOR_HEALTH_CRITICAL`` -> ``CRITICAL``; good and neutral values in
    lower case, problems in upper case so they stand out."""
    word = name.removeprefix(prefix).lower()
    if word == "unspecified":
        return "-"
    return word if word in ok or prefix not in ("SENSOR_HEALTH_", "SEVERITY_") else word.upper()


def _read(args, call: str, request):
    """One unary read; returns (response, None) or (None, exit code)."""
    return operation.read(args, bmc_pb2_grpc.BmcStub, call, request)


# -- reads -----------------------------------------------------------------
def bmc_list(args) -> int:
    resp, rc = _read(args, "ListBmcs", pb.ListBmcsRequest())
    if resp is None:
        return rc
    down = [b.target for b in resp.bmcs if not b.up]
    if args.json:
        print_json(resp)
        return EXIT_FAILED if down else 0
    if not resp.bmcs:
        print("no BMC configured ([[bmc.targets]] in the agent config)")
        return 0
    rows = []
    for b in resp.bmcs:
        circuit = b.circuit or "-"
        if b.circuit == "open":
            circuit += f" (retry in {b.retry_in.ToTimedelta().total_seconds():.1f}s)"
        rows.append([b.target, b.address, "yes" if b.local else "no", "up" if b.up else "DOWN", circuit,
                     str(b.cipher_suite) if b.cipher_suite else "-", b.last_error or "-"])
    table(["TARGET", "ADDRESS", "LOCAL", "UP", "CIRCUIT", "CIPHER", "LAST ERROR"], rows)
    return EXIT_FAILED if down else 0


def bmc_sensors(args) -> int:
    resp, rc = _read(args, "GetSensors", pb.GetSensorsRequest(target=args.bmc))
    if resp is None:
        return rc
    if args.json:
        print_json(resp)
        return 0
    rows = []
    for s in resp.sensors:
        value = f"{number(s.value)} {s.unit}".rstrip() if s.HasField("value") else "-"
        rows.append([str(s.number), s.name, _enum(pb.SensorKind.Name(s.kind), "SENSOR_KIND_"), value,
                     _enum(pb.SensorHealth.Name(s.health), "SENSOR_HEALTH_"), ", ".join(s.states) or "-"])
    print(f"{resp.target}: {len(rows)} sensors")
    table(["NUM", "NAME", "KIND", "VALUE", "HEALTH", "STATES"], rows)
    return 0


def bmc_sel(args) -> int:
    if args.action == "clear":
        if args.last is not None:
            raise UsageError("--last does not go with clear")
        return _operation(args, "ClearEventLog", pb.ClearEventLogRequest(target=args.bmc),
                          f"clear the event log of {args.bmc or 'the BMC'}")
    if args.request_id:
        raise UsageError("--request-id only goes with clear")
    if args.last is not None and args.last < 1:
        raise UsageError("--last must be at least 1")
    resp, rc = _read(args, "GetEventLog", pb.GetEventLogRequest(target=args.bmc,
                                                                 max_entries=args.last or 0))
    if resp is None:
        return rc
    if args.json:
        print_json(resp)
        return 0
    rows = []
    for e in resp.entries:
        event = e.event + ("  [deasserted]" if e.deassertion else "")
        rows.append([str(e.record_id), utc(e.time.seconds) if e.HasField("time") else "(pre-init)",
                     _enum(telemetry_pb2.Severity.Name(e.severity), "SEVERITY_"),
                     (e.sensor or f"#{e.sensor_number}") if e.sensor or e.sensor_number else "-", event])
    if rows:
        table(["ID", "TIME (UTC)", "SEVERITY", "SENSOR", "EVENT"], rows)
    shown = f"last {len(rows)} of " if len(rows) < resp.total_entries else ""
    print(f"{resp.target}: {shown}{resp.total_entries} entries, {resp.free_bytes} bytes free")
    return 0


def bmc_info(args) -> int:
    resp, rc = _read(args, "GetBmcInfo", pb.GetBmcInfoRequest(target=args.bmc))
    if resp is None:
        return rc
    if args.json:
        print_json(resp)
        return 0
    lines = [("target", f"{resp.target}  {resp.address}{'  (local)' if resp.local else ''}"),
             ("firmware", f"{resp.firmware_version or '?'}  IPMI {resp.ipmi_version or '?'}"),
             ("guid", resp.guid or "?"),
             ("manufacturer", f"{resp.manufacturer_id} (IANA)  product 0x{resp.product_id:04x}"
                              f"  device 0x{resp.device_id:02x}")]
    lines += [(f.name.replace("_", " "), value) for f, value in resp.fru.ListFields() if value]
    width = max(len(k) for k, _ in lines) + 1
    for key, value in lines:
        print(f"{key + ':':<{width}} {value}")
    return 0


# -- reads or operations ---------------------------------------------------
def bmc_power(args) -> int:
    if args.action is None:
        if args.force or args.wait_timeout or args.request_id:
            raise UsageError("--force, --wait-timeout and --request-id need an action (on, off, soft, "
                          "cycle, reset)")
        resp, rc = _read(args, "GetPowerState", pb.GetPowerStateRequest(target=args.bmc))
        if resp is None:
            return rc
        if args.json:
            print_json(resp)
        else:
            print(pb.PowerState.Name(resp.state).removeprefix("POWER_STATE_").lower())
        return 0
    from agent.config_values import parse_duration

    req = pb.SetPowerStateRequest(target=args.bmc, action=POWER_ACTIONS[args.action], force=args.force)
    if args.wait_timeout:
        try:
            req.wait_timeout.FromNanoseconds(int(parse_duration(args.wait_timeout) * 1e9))
        except ValueError as exc:
            raise UsageError(f"--wait-timeout: {exc}")
    return _operation(args, "SetPowerState", req, f"power {args.action} {args.bmc or 'the BMC'}")


def bmc_bootdev(args) -> int:
    if args.device is None:
        if args.persistent or args.uefi or args.request_id:
            raise UsageError("--persistent, --uefi and --request-id need a device (pxe, disk, cdrom, "
                          "bios-setup, default)")
        resp, rc = _read(args, "GetBootDevice", pb.GetBootDeviceRequest(target=args.bmc))
        if resp is None:
            return rc
        if args.json:
            print_json(resp)
            return 0
        print(_describe_boot(_BOOT_NAMES.get(resp.device, "default"), resp.persistent,
                             resp.mode == pb.BOOT_MODE_UEFI if resp.mode else None))
        return 0
    req = pb.SetBootDeviceRequest(target=args.bmc, device=BOOT_DEVICES[args.device],
                                  persistent=args.persistent,
                                  mode=pb.BOOT_MODE_UEFI if args.uefi else pb.BOOT_MODE_LEGACY)
    return _operation(args, "SetBootDevice", req, f"boot device {args.device} on {args.bmc or 'the BMC'}")


def _describe_boot(device: str, persistent: bool, uefi: bool | None) -> str:
    if device == "default":
        return "default (no override)"
    mode = "" if uefi is None else (", uefi" if uefi else ", legacy")
    return f"{device} ({'persistent' if persistent else 'next boot only'}{mode})"


def bmc_identify(args) -> int:
    req = pb.SetIdentifyRequest(target=args.bmc, on=args.state == "on")
    if args.seconds is not None:
        if args.state != "on" or not 1 <= args.seconds <= 255:
            raise UsageError("--seconds goes with on, from 1 to 255")
        req.duration.seconds = args.seconds
    return _operation(args, "SetIdentify", req, f"identify {args.state} on {args.bmc or 'the BMC'}")


# -- operations ------------------------------------------------------------
def _summary(op) -> str:
    r = json_format.MessageToDict(op.result)
    target = r.get("target", "?")
    if op.kind == "bmc.set_power":
        return f"{target}: power {r.get('power_state', '?')} (after {r.get('action', '?')})"
    if op.kind == "bmc.set_boot_device":
        boot = _describe_boot(r.get("device", "?"), bool(r.get("persistent")), bool(r.get("uefi")))
        return f"{target}: boot device {boot}"
    if op.kind == "bmc.set_identify":
        seconds = int(r.get("seconds") or 0)
        lit = f"on for {seconds}s" if seconds else "on until turned off"
        return f"{target}: identify {lit if r.get('on') else 'off'}"
    if op.kind == "bmc.clear_event_log":
        return f"{target}: event log cleared ({int(r.get('cleared_entries', 0))} entries)"
    return f"{target}: {op.kind} done"


def _operation(args, call: str, request, what: str) -> int:
    return operation.run(args, bmc_pb2_grpc.BmcStub, call, request, what, _summary)
