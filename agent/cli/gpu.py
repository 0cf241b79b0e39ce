"""``hostagent gpu``: the node's NVIDIA GPUs through the agent
(``hostagent.v1.Gpu``).

Reads print a table or lines (``--json``: the response message).  Settings
start an operation, wait for it and print what the GPU reads back
(:mod:`agent.cli.operation`: ``--request-id`` re-attaches to one instead of
acting twice).  A GPU is named by UUID, PCI bus id or index.  Exit codes:
0 ok, 1 failed (operation failed, GPU lost, unknown GPU, no driver),
2 usage error, 3 agent unreachable.
"""
from __future__ import annotations

from agent.cli import operation
from agent.cli.client import add_connection_options, add_request_id_option
from agent.cli.commands import help_of
from agent.cli.display import number, print_json, table
from agent.cli.exits import EXIT_FAILED, UsageError
from agent.gen.hostagent.v1 import gpu_pb2 as pb
from agent.gen.hostagent.v1 import gpu_pb2_grpc

STUB = gpu_pb2_grpc.GpuStub
COMPUTE_MODES = {"default": pb.COMPUTE_MODE_DEFAULT,
                 "exclusive-process": pb.COMPUTE_MODE_EXCLUSIVE_PROCESS,
                 "prohibited": pb.COMPUTE_MODE_PROHIBITED}
_MODE_NAMES = {v: k for k, v in COMPUTE_MODES.items()}


def add_parser(sub) -> None:
    gpu = sub.add_parser("gpu", help=help_of("gpu"),
                         description="The NVIDIA GPUs the agent sees through NVML.  A GPU is "
                         "named by UUID, PCI bus id (18:00.0) or index.  Settings wait for the "
                         "agent's operation and exit 0 only when it succeeded.  Exit codes: 0 ok, "
                         "1 failed (or a GPU down, for list), 2 usage error, 3 agent unreachable.")
    gpu_sub = gpu.add_subparsers(dest="gpu_command", required=True, metavar="ACTION")

    def cmd(name: str, help_text: str, func, target: bool = True, mutating: bool = False):
        p = gpu_sub.add_parser(name, help=help_text, description=help_text)
        if target:
            p.add_argument("gpu", metavar="GPU", help="UUID, PCI bus id or index")
        if mutating:
            add_request_id_option(p)
        add_connection_options(p)
        p.set_defaults(func=func)
        return p

    cmd("list", "every GPU: identity, whether it answers, power, temperature, MIG", gpu_list,
        target=False)
    cmd("show", "one GPU's identity, settings, MIG layout and nearby NICs, read now", gpu_show)
    p = cmd("power-limit", "print the power limits, or set the limit in watts (read back)",
            gpu_power_limit, mutating=True)
    p.add_argument("watts", nargs="?", type=float, help="omit to print the limits")
    p = cmd("persistence", "print persistence mode, or turn it on or off", gpu_persistence,
            mutating=True)
    p.add_argument("state", nargs="?", choices=("on", "off"))
    p = cmd("compute-mode", "print the compute mode, or set it", gpu_compute_mode, mutating=True)
    p.add_argument("mode", nargs="?", choices=tuple(COMPUTE_MODES))
    p = cmd("ecc", "print ECC mode (current, pending), or set it (after the next reset)", gpu_ecc,
            mutating=True)
    p.add_argument("state", nargs="?", choices=("on", "off"))
    p = cmd("mig", "print the MIG mode and layout; 'on'/'off' sets the mode; 'configure PROFILE"
            "[:SLICES,...] ...' makes the layout exactly that (e.g. 3g.40gb 3g.40gb, or "
            "3g.40gb:1,1,1 for three 1-slice compute instances)", gpu_mig, mutating=True)
    p.add_argument("action", nargs="?", choices=("on", "off", "configure"))
    p.add_argument("instances", nargs="*", metavar="PROFILE", help="with configure")
    p.add_argument("--force", action="store_true", help="go ahead although compute processes run")
    p = cmd("reset", "re-initialize the GPU (admin): pending ECC/MIG modes take effect", gpu_reset,
            mutating=True)
    p.add_argument("--force", action="store_true", help="go ahead although compute processes run")


def _read(args, call: str, request):
    return operation.read(args, STUB, call, request)


def _show(args):
    return _read(args, "GetGpu", pb.GetGpuRequest(gpu=args.gpu))


def _run(args, call: str, request, what: str) -> int:
    return operation.run(args, STUB, call, request, what, _summary)


def _no_change_options(args, *names: str) -> None:
    given = [n for n in names if getattr(args, n.replace("-", "_"), None)]
    if given or getattr(args, "request_id", None):
        raise UsageError(f"{', '.join('--' + n for n in given) or '--request-id'} needs a value "
                         "to set")


# -- reads -----------------------------------------------------------------
def gpu_list(args) -> int:
    resp, rc = _read(args, "ListGpus", pb.ListGpusRequest())
    if resp is None:
        return rc
    down = [g.info.uuid for g in resp.gpus if not g.up]
    if args.json:
        print_json(resp)
        return EXIT_FAILED if down else 0
    print(f"driver {resp.driver_version or '?'}  CUDA {resp.cuda_version or '?'}  "
          f"{len(resp.gpus)} GPU(s)")
    rows = []
    for g in resp.gpus:
        i = g.info
        rows.append([str(i.index), i.uuid, i.pci_bus_id, i.name, "up" if g.up else "DOWN",
                     f"{number(g.power_watts)} W" if g.HasField("power_watts") else "-",
                     f"{number(g.temperature_celsius)} C" if g.HasField("temperature_celsius") else "-",
                     f"{number(g.utilization_percent)}%" if g.HasField("utilization_percent") else "-",
                     f"{len(i.mig_instances)} inst" if i.mig_current else "off",
                     str(g.processes), str(g.last_xid or "-"), g.last_error or "-"])
    if rows:
        table(["GPU", "UUID", "PCI", "NAME", "UP", "POWER", "TEMP", "UTIL", "MIG", "PROCS",
               "LAST XID", "LAST ERROR"], rows)
    return EXIT_FAILED if down else 0


def _mig_lines(i) -> list[tuple[str, str]]:
    lines = [("mig", f"{'on' if i.mig_current else 'off'}"
              + (f" (pending {'on' if i.mig_pending else 'off'})" if i.mig_pending != i.mig_current
                 else ""))]
    for g in i.mig_instances:
        cis = ",".join(str(c.slices) for c in g.compute_instances) or "none"
        lines.append((f"  instance {g.id}", f"{g.profile} at slice {g.placement_start}, "
                      f"compute slices {cis}"))
    if i.mig_profiles:
        lines.append(("  profiles", ", ".join(f"{p.name} (x{p.max_instances})"
                                              for p in i.mig_profiles)))
    return lines


def gpu_show(args) -> int:
    resp, rc = _show(args)
    if resp is None:
        return rc
    if args.json:
        print_json(resp)
        return 0
    i, p = resp.info, resp.info.power_limits
    lines = [("gpu", f"{i.index}  {i.device}  {i.uuid}"), ("name", i.name), ("pci", i.pci_bus_id),
             ("serial", i.serial or "-"), ("vbios", i.vbios_version or "-"),
             ("driver", f"{i.driver_version}  CUDA {i.cuda_version}  compute {i.cuda_capability}"),
             ("memory", f"{i.memory_total_bytes >> 20} MiB"),
             ("numa node", str(i.numa_node) if i.HasField("numa_node") else "-"),
             ("state", ("up" if resp.up else f"DOWN ({resp.last_error})")),
             ("power limit", f"{number(p.current_watts)} W (min {number(p.min_watts)}, max "
                             f"{number(p.max_watts)}, default {number(p.default_watts)})"),
             ("persistence", "on" if i.persistence_mode else "off"),
             ("compute mode", _MODE_NAMES.get(i.compute_mode, "-")),
             ("ecc", f"{'on' if i.ecc_current else 'off'}"
                     + (f" (pending {'on' if i.ecc_pending else 'off'})"
                        if i.ecc_pending != i.ecc_current else "")),
             *_mig_lines(i), ("nvlinks", str(i.nvlinks))]
    for n in i.nearby_nics:
        where = "same switch" if n.affinity == pb.PCIE_AFFINITY_SWITCH else "same host bridge"
        lines.append(("nic", f"{n.name} {n.pci_address} ({where})"))
    width = max(len(k) for k, _ in lines) + 1
    for key, value in lines:
        print(f"{key + ':':<{width}} {value}")
    return 0


# -- reads or operations ---------------------------------------------------
def gpu_power_limit(args) -> int:
    if args.watts is None:
        _no_change_options(args)
        resp, rc = _show(args)
        if resp is None:
            return rc
        if args.json:
            print_json(resp.info.power_limits)
            return 0
        p = resp.info.power_limits
        print(f"{number(p.current_watts)} W (min {number(p.min_watts)}, max {number(p.max_watts)}, "
              f"default {number(p.default_watts)})")
        return 0
    return _run(args, "SetPowerLimit", pb.SetPowerLimitRequest(gpu=args.gpu, watts=args.watts),
                f"power limit {number(args.watts)} W on GPU {args.gpu}")


def gpu_persistence(args) -> int:
    if args.state is None:
        _no_change_options(args)
        resp, rc = _show(args)
        if resp is not None:
            print("on" if resp.info.persistence_mode else "off")
        return rc or 0
    return _run(args, "SetPersistenceMode",
                pb.SetPersistenceModeRequest(gpu=args.gpu, enabled=args.state == "on"),
                f"persistence {args.state} on GPU {args.gpu}")


def gpu_compute_mode(args) -> int:
    if args.mode is None:
        _no_change_options(args)
        resp, rc = _show(args)
        if resp is not None:
            print(_MODE_NAMES.get(resp.info.compute_mode, "-"))
        return rc or 0
    return _run(args, "SetComputeMode",
                pb.SetComputeModeRequest(gpu=args.gpu, mode=COMPUTE_MODES[args.mode]),
                f"compute mode {args.mode} on GPU {args.gpu}")


def gpu_ecc(args) -> int:
    if args.state is None:
        _no_change_options(args)
        resp, rc = _show(args)
        if resp is not None:
            i = resp.info
            print(f"{'on' if i.ecc_current else 'off'} (after reset: "
                  f"{'on' if i.ecc_pending else 'off'})")
        return rc or 0
    return _run(args, "SetEccMode", pb.SetEccModeRequest(gpu=args.gpu, enabled=args.state == "on"),
                f"ECC {args.state} on GPU {args.gpu}")


def _spec(text: str) -> pb.MigInstanceSpec:
    profile, _, slices = text.partition(":")
    try:
        compute = [int(s) for s in slices.split(",")] if slices else []
    except ValueError:
        raise UsageError(f"{text!r}: expected PROFILE or PROFILE:SLICES,... (e.g. 3g.40gb:1,2)")
    return pb.MigInstanceSpec(profile=profile, compute_slices=compute)


def gpu_mig(args) -> int:
    if args.action is None:
        _no_change_options(args, "force")
        if args.instances:
            raise UsageError("profiles go with configure")
        resp, rc = _show(args)
        if resp is None:
            return rc
        if args.json:
            print_json(resp.info)
            return 0
        for key, value in _mig_lines(resp.info):
            print(f"{key}: {value}")
        return 0
    if args.action == "configure":
        req = pb.ConfigureMigRequest(gpu=args.gpu, instances=[_spec(t) for t in args.instances],
                                     force=args.force)
        return _run(args, "ConfigureMig", req, f"MIG layout on GPU {args.gpu}")
    if args.instances:
        raise UsageError("profiles go with configure")
    return _run(args, "SetMigMode", pb.SetMigModeRequest(gpu=args.gpu, enabled=args.action == "on",
                                                         force=args.force),
                f"MIG {args.action} on GPU {args.gpu}")


def gpu_reset(args) -> int:
    return _run(args, "ResetGpu", pb.ResetGpuRequest(gpu=args.gpu, force=args.force),
                f"reset GPU {args.gpu}")


def _summary(op) -> str:
    r = operation.result(op)
    gpu = r.get("uuid", "?")
    if op.kind == "gpu.set_power_limit":
        return f"{gpu}: power limit {number(r.get('power_limit_watts', 0))} W"
    if op.kind == "gpu.set_persistence_mode":
        return f"{gpu}: persistence {'on' if r.get('persistence') else 'off'}"
    if op.kind == "gpu.set_compute_mode":
        return f"{gpu}: compute mode {r.get('compute_mode', '?')}"
    if op.kind in ("gpu.set_ecc_mode", "gpu.set_mig_mode"):
        what = "ecc" if op.kind == "gpu.set_ecc_mode" else "mig"
        now, pending = r.get(f"{what}_current"), r.get(f"{what}_pending")
        tail = f" (pending {'on' if pending else 'off'}; reset the GPU)" if r.get("reset_required") else ""
        return f"{gpu}: {what.upper()} {'on' if now else 'off'}{tail}"
    if op.kind == "gpu.configure_mig":
        layout = ", ".join(f"{g['profile']}#{int(g['gpu_instance_id'])}" for g in r.get("layout", []))
        change = (f"created {int(r.get('created', 0))}, destroyed {int(r.get('destroyed', 0))}"
                  if r.get("changed") else "already so, nothing changed")
        return f"{gpu}: MIG layout {layout or 'empty'} ({change})"
    if op.kind == "gpu.reset":
        return f"{gpu}: reset; now index {int(r.get('index', 0))} at {r.get('pci_bus_id', '?')}"
    return f"{gpu}: {op.kind} done"
