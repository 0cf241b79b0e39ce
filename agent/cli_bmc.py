"""``hostagent bmc``: the node's BMC through the agent (``hostagent.v1.Bmc``).

Reads print a table or a line (``--json``: the response message).  Mutating
actions start an operation, wait for it to end (``Operations.WaitOperation``)
and print its result; the request id is printed first so that a retry after
a lost connection or Ctrl-C can re-attach: the same command with
``--request-id`` gets the same operation back instead of acting twice (with
other arguments the agent refuses the reused id).

``--target`` names the BMC (a ``[[bmc.targets]]`` name; default the local or
only one); the agent's own address is ``--agent``.  Exit codes as for the
other client commands: 0 ok, 1 failed (operation failed, BMC down, unknown
target), 2 usage error, 3 agent unreachable.
"""
from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import grpc
from google.protobuf import duration_pb2, json_format

from agent.cli_client import EXIT_UNHEALTHY, EXIT_USAGE, _channel, _fail, _fmt
from agent.gen.hostagent.v1 import bmc_pb2 as pb
from agent.gen.hostagent.v1 import bmc_pb2_grpc, operations_pb2, operations_pb2_grpc
from agent.gen.hostagent.v1 import telemetry_pb2

POWER_ACTIONS = {"on": pb.POWER_ACTION_ON, "off": pb.POWER_ACTION_OFF, "soft": pb.POWER_ACTION_SOFT,
                 "cycle": pb.POWER_ACTION_CYCLE, "reset": pb.POWER_ACTION_RESET}
BOOT_DEVICES = {"pxe": pb.BOOT_DEVICE_PXE, "disk": pb.BOOT_DEVICE_DISK, "cdrom": pb.BOOT_DEVICE_CDROM,
                "bios-setup": pb.BOOT_DEVICE_BIOS_SETUP, "default": pb.BOOT_DEVICE_DEFAULT}
_BOOT_NAMES = {v: k for k, v in BOOT_DEVICES.items()}
_DONE = (operations_pb2.OPERATION_STATE_SUCCEEDED, operations_pb2.OPERATION_STATE_FAILED,
         operations_pb2.OPERATION_STATE_CANCELLED)
_CODES = {s.value[0]: s.name for s in grpc.StatusCode}
WAIT_STEP = 60  # seconds per WaitOperation call (the agent's maximum)


def _conn(args) -> SimpleNamespace:
    """What cli_client's _channel/_fail expect: the agent address as ``target``."""
    return SimpleNamespace(target=args.agent)


def _print_json(msg) -> None:
    print(json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                               always_print_fields_with_no_presence=True), indent=2))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _enum(name: str, prefix: str, ok: tuple[str, ...] = ("ok", "info")) -> str:
    """``SENSOR_HEALTH_CRITICAL`` -> ``CRITICAL``; good and neutral values in
    lower case, problems in upper case so they stand out."""
    word = name.removeprefix(prefix).lower()
    if word == "unspecified":
        return "-"
    return word if word in ok or prefix not in ("SENSOR_HEALTH_", "SEVERITY_") else word.upper()


def _error(args, ch: grpc.Channel, exc: grpc.RpcError) -> int:
    """Report a failed call.  UNAVAILABLE from a Bmc call is mostly the BMC's
    (no answer, circuit open), not the agent's: it is only "cannot reach the
    agent" when the connection to the agent is down."""
    if exc.code() is grpc.StatusCode.UNAVAILABLE:
        try:
            grpc.channel_ready_future(ch).result(timeout=0.2)
        except grpc.FutureTimeoutError:
            pass
        else:
            print(f"hostagent: UNAVAILABLE: {exc.details()}", file=sys.stderr)
            return EXIT_UNHEALTHY
    return _fail(_conn(args), exc)


def _read(args, call: str, request):
    """One unary read; returns (response, None) or (None, exit code)."""
    with _channel(_conn(args)) as ch:
        try:
            return getattr(bmc_pb2_grpc.BmcStub(ch), call)(request, timeout=args.timeout), None
        except grpc.RpcError as exc:
            return None, _error(args, ch, exc)


def _usage(message: str) -> int:
    print(f"hostagent: {message}", file=sys.stderr)
    return EXIT_USAGE


# -- reads -----------------------------------------------------------------
def bmc_list(args) -> int:
    resp, rc = _read(args, "ListBmcs", pb.ListBmcsRequest())
    if resp is None:
        return rc
    down = [b.target for b in resp.bmcs if not b.up]
    if args.json:
        _print_json(resp)
        return EXIT_UNHEALTHY if down else 0
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
    _table(["TARGET", "ADDRESS", "LOCAL", "UP", "CIRCUIT", "CIPHER", "LAST ERROR"], rows)
    return EXIT_UNHEALTHY if down else 0


def bmc_sensors(args) -> int:
    resp, rc = _read(args, "GetSensors", pb.GetSensorsRequest(target=args.bmc))
    if resp is None:
        return rc
    if args.json:
        _print_json(resp)
        return 0
    rows = []
    for s in resp.sensors:
        value = f"{_fmt(s.value)} {s.unit}".rstrip() if s.HasField("value") else "-"
        rows.append([str(s.number), s.name, _enum(pb.SensorKind.Name(s.kind), "SENSOR_KIND_"), value,
                     _enum(pb.SensorHealth.Name(s.health), "SENSOR_HEALTH_"), ", ".join(s.states) or "-"])
    print(f"{resp.target}: {len(rows)} sensors")
    _table(["NUM", "NAME", "KIND", "VALUE", "HEALTH", "STATES"], rows)
    return 0


def _utc(ts) -> str:
    return datetime.fromtimestamp(ts.seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bmc_sel(args) -> int:
    if args.action == "clear":
        if args.last is not None:
            return _usage("--last does not go with clear")
        return _operation(args, "ClearEventLog", pb.ClearEventLogRequest(target=args.bmc),
                          f"clear the event log of {args.bmc or 'the BMC'}")
    if args.request_id:
        return _usage("--request-id only goes with clear")
    if args.last is not None and args.last < 1:
        return _usage("--last must be at least 1")
    resp, rc = _read(args, "GetEventLog", pb.GetEventLogRequest(target=args.bmc,
                                                                 max_entries=args.last or 0))
    if resp is None:
        return rc
    if args.json:
        _print_json(resp)
        return 0
    rows = []
    for e in resp.entries:
        event = e.event + ("  [deasserted]" if e.deassertion else "")
        rows.append([str(e.record_id), _utc(e.time) if e.HasField("time") else "(pre-init)",
                     _enum(telemetry_pb2.Severity.Name(e.severity), "SEVERITY_"),
                     (e.sensor or f"#{e.sensor_number}") if e.sensor or e.sensor_number else "-", event])
    if rows:
        _table(["ID", "TIME (UTC)", "SEVERITY", "SENSOR", "EVENT"], rows)
    shown = f"last {len(rows)} of " if len(rows) < resp.total_entries else ""
    print(f"{resp.target}: {shown}{resp.total_entries} entries, {resp.free_bytes} bytes free")
    return 0


def bmc_info(args) -> int:
    resp, rc = _read(args, "GetBmcInfo", pb.GetBmcInfoRequest(target=args.bmc))
    if resp is None:
        return rc
    if args.json:
        _print_json(resp)
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
            return _usage("--force, --wait-timeout and --request-id need an action (on, off, soft, "
                          "cycle, reset)")
        resp, rc = _read(args, "GetPowerState", pb.GetPowerStateRequest(target=args.bmc))
        if resp is None:
            return rc
        if args.json:
            _print_json(resp)
        else:
            print(pb.PowerState.Name(resp.state).removeprefix("POWER_STATE_").lower())
        return 0
    from agent.config import parse_duration

    req = pb.SetPowerStateRequest(target=args.bmc, action=POWER_ACTIONS[args.action], force=args.force)
    if args.wait_timeout:
        try:
            req.wait_timeout.FromNanoseconds(int(parse_duration(args.wait_timeout) * 1e9))
        except ValueError as exc:
            return _usage(f"--wait-timeout: {exc}")
    return _operation(args, "SetPowerState", req, f"power {args.action} {args.bmc or 'the BMC'}")


def bmc_bootdev(args) -> int:
    if args.device is None:
        if args.persistent or args.uefi or args.request_id:
            return _usage("--persistent, --uefi and --request-id need a device (pxe, disk, cdrom, "
                          "bios-setup, default)")
        resp, rc = _read(args, "GetBootDevice", pb.GetBootDeviceRequest(target=args.bmc))
        if resp is None:
            return rc
        if args.json:
            _print_json(resp)
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
            return _usage("--seconds goes with on, from 1 to 255")
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
    request.request_id = args.request_id or str(uuid.uuid4())
    rid, op = request.request_id, None
    again = f"rerun the same command with --request-id {rid} to wait for it again"
    with _channel(_conn(args)) as ch:
        try:
            op = getattr(bmc_pb2_grpc.BmcStub(ch), call)(request, timeout=args.timeout)
            print(f"hostagent: {what}: {op.name} (request id {rid})", file=sys.stderr)
            ops = operations_pb2_grpc.OperationsStub(ch)
            wait = operations_pb2.WaitOperationRequest(name=op.name,
                                                       timeout=duration_pb2.Duration(seconds=WAIT_STEP))
            while op.state not in _DONE:
                op = ops.WaitOperation(wait, timeout=WAIT_STEP + args.timeout)
        except grpc.RpcError as exc:
            rc = _error(args, ch, exc)
            if op is not None:
                print(f"hostagent: {op.name} may still be running; {again}", file=sys.stderr)
            return rc
        except KeyboardInterrupt:
            if op is not None:
                print(f"\nhostagent: stopped waiting; {op.name} goes on in the agent; {again}",
                      file=sys.stderr)
            return 130
    if args.json:
        _print_json(op)
    if op.state == operations_pb2.OPERATION_STATE_SUCCEEDED:
        if not args.json:
            print(_summary(op))
        return 0
    state = operations_pb2.OperationState.Name(op.state).removeprefix("OPERATION_STATE_")
    print(f"hostagent: {what} {state}: {_CODES.get(op.error.code, op.error.code)}: {op.error.message}",
          file=sys.stderr)
    return EXIT_UNHEALTHY
