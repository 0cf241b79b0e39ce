"""``hostagent status``, ``metrics`` and ``inventory``: the agent's health,
current values (with rates and window statistics) and the hardware
inventory, as text for people or JSON (``--json``)."""
from __future__ import annotations

import argparse
import fnmatch
import re

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.cli import display
from agent.cli.client import add_connection_options, connection, report_error
from agent.cli.commands import help_of
from agent.cli.exits import EXIT_FAILED, UsageError, warn
from agent.gen.hostagent.v1 import inventory_pb2, inventory_pb2_grpc, telemetry_pb2 as tpb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc

_MATCHER_RE = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$")
_OPS = {"=": tpb.MATCH_OP_EQUAL, "!=": tpb.MATCH_OP_NOT_EQUAL,
        "=~": tpb.MATCH_OP_REGEX, "!~": tpb.MATCH_OP_NOT_REGEX}
_STATUS_FAMILIES = ("hostagent_collector_up", "hostagent_collector_present",
                    "hostagent_collector_duration_seconds", "hostagent_collector_errors_total")


def add_parsers(sub) -> None:
    def client(name: str, description: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_of(name), description=description)
        add_connection_options(p, deprecated_target=True)
        p.set_defaults(func=func)
        return p

    client("status", "The agent's health, version and kernels, the number of series it serves "
           "on /metrics, and each collector: up, DOWN or absent, its last run and its errors.  "
           "Exits 1 when the agent is not serving or a collector is down.", show_status)
    metrics = client("metrics", "Current values of the metrics named (all without NAME), one "
                     "series a line, with counters' per-second rates.  Exits 1 when nothing "
                     "matches.", show_metrics)
    metrics.add_argument("names", nargs="*", metavar="NAME", help="metric names or globs")
    metrics.add_argument("-l", "--label", action="append", default=[], metavar="MATCHER",
                         help="label matcher: name=value, name!=value, name=~regex, name!~regex")
    metrics.add_argument("-w", "--window", metavar="DURATION",
                         help="add min/max/mean/p50/p90/p99 over this window, e.g. 5m")
    metrics.add_argument("--raw", action="store_true",
                         help="every digit (default: 24.1 GB, 3.2M, UTC times)")
    inventory = client("inventory", "Host, role, DMI, CPU and NUMA, memory, NICs and disks.",
                       show_inventory)
    inventory.add_argument("--refresh", action="store_true", help="re-read the hardware now")


def show_status(args) -> int:
    conn = connection(args)
    try:
        with conn.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=conn.timeout)
            # Globs: right after the agent starts, before its first collection,
            # these families do not exist yet (a plain name would be INVALID_ARGUMENT).
            resp = telemetry_pb2_grpc.TelemetryStub(ch).GetMetrics(tpb.GetMetricsRequest(
                selector=tpb.MetricSelector(names=["hostagent_collector_*", "hostagent_build_info*",
                                                   "hostagent_series*"])),
                timeout=conn.timeout)
    except grpc.RpcError as exc:
        return report_error(conn, exc)
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    fams = {f.info.name: f for f in resp.families}
    per: dict[str, dict[str, float]] = {}
    for name, field in zip(_STATUS_FAMILIES, ("up", "present", "duration", "errors")):
        for s in fams[name].samples if name in fams else []:
            per.setdefault(s.labels["collector"], {})[field] = s.value
    build = fams.get("hostagent_build_info")
    info = dict(build.samples[0].labels) if build and build.samples else {}
    down = sorted(c for c, v in per.items() if not v.get("up"))
    # hostagent_series counts what /metrics serves (agent.telemetry.store.series_count).
    series = fams.get("hostagent_series")
    count = int(series.samples[0].value) if series and series.samples else None
    if args.json:
        display.print_json({"serving": serving, "build": info, "series": count,
                             "collectors": per, "down": down})
    else:
        print(f"agent:      {'SERVING' if serving else 'NOT SERVING'}  version {info.get('version', '?')}"
              f"  kernels {info.get('kernels', '?')}")
        if count is not None:
            print(f"series:     {count} (as served on /metrics)")
        print(f"\n{'COLLECTOR':<12} {'STATE':<8} {'LAST RUN':>10} {'ERRORS':>7}")
        for name, v in sorted(per.items()):
            state = "up" if v.get("up") else "DOWN"
            if v.get("present", 1) == 0:
                state = "absent"
            print(f"{name:<12} {state:<8} {v.get('duration', 0) * 1000:>8.1f}ms "
                  f"{display.number(v.get('errors', 0)):>7}")
    return 0 if serving and not down else EXIT_FAILED


def parse_matchers(items: list[str]) -> list[tpb.LabelMatcher]:
    out = []
    for item in items:
        m = _MATCHER_RE.match(item)
        if not m:
            raise UsageError(f"bad label matcher {item!r} (want name=value, name!=value, "
                             "name=~regex or name!~regex)")
        out.append(tpb.LabelMatcher(name=m.group(1), op=_OPS[m.group(2)], value=m.group(3)))
    return out


def show_metrics(args) -> int:
    from agent.config_values import parse_duration

    req = tpb.GetMetricsRequest(selector=tpb.MetricSelector(
        names=args.names, matchers=parse_matchers(args.label)))
    if args.window:
        try:
            req.window.FromNanoseconds(int(parse_duration(args.window) * 1e9))
        except ValueError as exc:
            raise UsageError(f"--window: {exc}") from None
    conn = connection(args)
    try:
        with conn.channel() as ch:
            resp = telemetry_pb2_grpc.TelemetryStub(ch).GetMetrics(req, timeout=conn.timeout)
    except grpc.RpcError as exc:
        return report_error(conn, exc)
    # A plain name the agent does not know is its INVALID_ARGUMENT (exit 2);
    # a glob that matches nothing, or matchers that leave nothing, end here.
    got = [f.info.name for f in resp.families if f.samples]
    unmatched = [p for p in args.names if not fnmatch.filter(got, p)]
    if args.json:
        display.print_json(resp)
    else:
        for fam in resp.families:
            _print_family(fam, args)
    with_labels = f" with -l {' -l '.join(args.label)}" if args.label else ""
    for pattern in unmatched:
        warn(f"no series matches {pattern!r}{with_labels}")
    if not got and not unmatched:
        warn(f"no series matches{with_labels}")
    return EXIT_FAILED if unmatched or not got else 0


def _print_family(fam, args) -> None:
    name, unit, raw = fam.info.name, fam.info.unit, args.raw

    def show(v: float, per_second: bool = False) -> str:
        return display.metric_value(v, name, unit, raw=raw, per_second=per_second)

    for s in sorted(fam.samples, key=lambda s: sorted(s.labels.items())):
        line = f"{name}{display.labels(s.labels)} {show(s.value)}"
        if s.HasField("rate"):
            line += f"  rate={show(s.rate, per_second=True)}"
        if s.HasField("stats"):
            st = s.stats
            of_rate = fam.info.type == tpb.METRIC_TYPE_COUNTER  # a counter's history is its rate
            f = (lambda v: show(v, per_second=True)) if of_rate else show
            line += (f"  [{args.window}: min={f(st.min)} mean={f(st.mean)} max={f(st.max)}"
                     f" p50={f(st.p50)} p90={f(st.p90)} p99={f(st.p99)} n={st.count}]")
        print(line)


def show_inventory(args) -> int:
    conn = connection(args)
    try:
        with conn.channel() as ch:
            resp = inventory_pb2_grpc.InventoryStub(ch).GetInventory(
                inventory_pb2.GetInventoryRequest(refresh=args.refresh), timeout=max(conn.timeout, 30))
    except grpc.RpcError as exc:
        return report_error(conn, exc)
    inv = resp.inventory
    if args.json:
        display.print_json(inv)
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
