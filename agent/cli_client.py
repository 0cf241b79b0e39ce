"""Client side of the CLI: talks gRPC to a running agent and prints tables
(or JSON with ``--json``).  Exit codes: 0 ok, 1 agent unhealthy or a
collector down, 2 usage error, 3 agent unreachable."""
from __future__ import annotations

import json
import math
import os
import re
import sys

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.gen.hostagent.v1 import inventory_pb2, inventory_pb2_grpc, telemetry_pb2 as tpb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc

EXIT_UNHEALTHY, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
_MATCHER_RE = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$")
_OPS = {"=": tpb.MATCH_OP_EQUAL, "!=": tpb.MATCH_OP_NOT_EQUAL,
        "=~": tpb.MATCH_OP_REGEX, "!~": tpb.MATCH_OP_NOT_REGEX}


def default_target() -> str:
    """The local agent: its unix socket if present, else its TCP listener."""
    from agent.daemon import load_agent_config

    cfg = load_agent_config(None)
    sock = cfg.server.grpc_socket
    if sock and os.path.exists(sock):
        return f"unix:{sock}"
    return cfg.server.grpc_listen or "127.0.0.1:9447"


def _channel(args) -> grpc.Channel:
    return grpc.insecure_channel(args.target or default_target())


def _fail(args, exc: grpc.RpcError) -> int:
    code = exc.code()
    target = args.target or default_target()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        print(f"hostagent: cannot reach the agent at {target}: {exc.details()}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"hostagent: {code.name}: {exc.details()}", file=sys.stderr)
    return EXIT_USAGE if code is grpc.StatusCode.INVALID_ARGUMENT else EXIT_UNHEALTHY


def _labels(sample) -> tuple:
    return tuple(sorted(sample.labels.items()))


def status(args) -> int:
    try:
        with _channel(args) as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
            resp = telemetry_pb2_grpc.TelemetryStub(ch).GetMetrics(tpb.GetMetricsRequest(
                selector=tpb.MetricSelector(names=["hostagent_collector_*", "hostagent_build_info",
                                                   "hostagent_series"])),
                timeout=args.timeout)
    except grpc.RpcError as exc:
        return _fail(args, exc)
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    fams = {f.info.name: f for f in resp.families}
    per = {}
    for name, field in (("hostagent_collector_up", "up"), ("hostagent_collector_present", "present"),
                        ("hostagent_collector_duration_seconds", "duration"),
                        ("hostagent_collector_errors_total", "errors")):
        for s in fams[name].samples if name in fams else []:
            per.setdefault(s.labels["collector"], {})[field] = s.value
    build = fams.get("hostagent_build_info")
    info = dict(build.samples[0].labels) if build and build.samples else {}
    down = sorted(c for c, v in per.items() if not v.get("up"))
    if args.json:
        print(json.dumps({"serving": serving, "build": info, "collectors": per, "down": down}, indent=2))
    else:
        print(f"agent:      {'SERVING' if serving else 'NOT SERVING'}  version {info.get('version', '?')}"
              f"  kernels {info.get('kernels', '?')}")
        series = fams.get("hostagent_series")
        if series and series.samples:
            print(f"series:     {int(series.samples[0].value)}")
        print(f"\n{'COLLECTOR':<12} {'STATE':<8} {'LAST RUN':>10} {'ERRORS':>7}")
        for name, v in sorted(per.items()):
            state = "up" if v.get("up") else "DOWN"
            if v.get("present", 1) == 0:
                state = "absent"
            print(f"{name:<12} {state:<8} {v.get('duration', 0) * 1000:>8.1f}ms {int(v.get('errors', 0)):>7}")
    return 0 if serving and not down else EXIT_UNHEALTHY


def _parse_matchers(items: list[str]) -> list[tpb.LabelMatcher]:
    out = []
    for item in items:
        m = _MATCHER_RE.match(item)
        if not m:
            raise ValueError(f"bad label matcher {item!r} (want name=value, name!=value, "
                             "name=~regex or name!~regex)")
        out.append(tpb.LabelMatcher(name=m.group(1), op=_OPS[m.group(2)], value=m.group(3)))
    return out


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"


def metrics(args) -> int:
    from agent.config import parse_duration

    try:
        req = tpb.GetMetricsRequest(selector=tpb.MetricSelector(
            names=args.names, matchers=_parse_matchers(args.label)))
        if args.window:
            req.window.FromNanoseconds(int(parse_duration(args.window) * 1e9))
    except ValueError as exc:
        print(f"hostagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _channel(args) as ch:
            resp = telemetry_pb2_grpc.TelemetryStub(ch).GetMetrics(req, timeout=args.timeout)
    except grpc.RpcError as exc:
        return _fail(args, exc)
    if args.json:
        print(json_format.MessageToJson(resp, preserving_proto_field_name=True))
        return 0
    for fam in resp.families:
        for s in sorted(fam.samples, key=_labels):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            line = f"{fam.info.name}{{{labels}}} {_fmt(s.value)}" if labels else f"{fam.info.name} {_fmt(s.value)}"
            if s.HasField("rate"):
                line += f"  rate={_fmt(s.rate)}/s"
            if s.HasField("stats"):
                st = s.stats
                line += (f"  [{args.window}: min={_fmt(st.min)} mean={_fmt(st.mean)} max={_fmt(st.max)}"
                         f" p50={_fmt(st.p50)} p90={_fmt(st.p90)} p99={_fmt(st.p99)} n={st.count}]")
            print(line)
    return 0


def inventory(args) -> int:
    try:
        with _channel(args) as ch:
            resp = inventory_pb2_grpc.InventoryStub(ch).GetInventory(
                inventory_pb2.GetInventoryRequest(refresh=args.refresh), timeout=max(args.timeout, 30))
    except grpc.RpcError as exc:
        return _fail(args, exc)
    inv = resp.inventory
    if args.json:
        print(json_format.MessageToJson(inv, preserving_proto_field_name=True))
        return 0
    h, c, m = inv.host, inv.cpu, inv.memory
    print(f"host:    {h.hostname}  {h.os_name}  kernel {h.kernel_release} ({h.architecture})")
    print(f"role:    {inventory_pb2.HostRole.Name(h.role).removeprefix('HOST_ROLE_').lower()}"
          f"{'  on ' + h.virtualization if h.virtualization else ''}  machine-id {h.machine_id}")
    if inv.dmi.present:
        print(f"system:  {inv.dmi.sys_vendor} {inv.dmi.product_name}  serial {inv.dmi.product_serial or '?'}"
              f"  BIOS {inv.dmi.bios_vendor} {inv.dmi.bios_version}")
    else:
        print("system:  DMI not exposed")
    print(f"cpu:     {c.model}  {c.sockets} socket(s), {c.cores} cores, {c.threads} threads"
          f"{'  (vmx/svm)' if c.virtualization_capable else ''}")
    for node in c.numa_nodes:
        print(f"  numa {node.id}: {len(node.cpus)} cpus, {node.memory_bytes / 2**30:.1f} GiB")
    print(f"memory:  {m.total_bytes / 2**30:.1f} GiB, swap {m.swap_total_bytes / 2**30:.1f} GiB")
    for n in inv.nics:
        extra = f"  {n.pci_address} fw {n.firmware_version}" if n.pci_address else ""
        speed = f"  {n.speed_mbps} Mb/s" if n.speed_mbps else ""
        master = f"  in {n.master}" if n.master else ""
        print(f"nic:     {n.name:<10} {n.kind:<8} {n.mac}  mtu {n.mtu}  {n.driver}{speed}{master}{extra}")
    for d in inv.block_devices:
        kind = "hdd" if d.rotational else "ssd"
        print(f"disk:    {d.name:<10} {d.size_bytes / 1e9:>9.1f} GB  {kind}  {d.transport:<6} "
              f"{d.model} {d.serial}".rstrip())
    return 0
