"""``hostagent flows``: the node's sampled traffic by flow, through the agent
(``hostagent.v1.Flows``).

``list`` prints the top flows over a window; ``watch`` prints them again
every interval until interrupted.  ``--json``: the response message (one
per line for watch).  Exit codes: 0 ok, 1 nothing matched or sampling is
off, 2 usage error, 3 agent unreachable.
"""
from __future__ import annotations

import grpc
from google.protobuf import duration_pb2

from agent.cli import operation
from agent.cli.client import add_connection_options, connection
from agent.cli.commands import help_of
from agent.cli.display import number, print_json, table
from agent.cli.exits import EXIT_FAILED, UsageError
from agent.config_values import parse_duration
from agent.gen.hostagent.v1 import flows_pb2 as pb
from agent.gen.hostagent.v1 import flows_pb2_grpc

STUB = flows_pb2_grpc.FlowsStub
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 47: "gre", 50: "esp"}


def add_parser(sub) -> None:
    flows = sub.add_parser("flows", help=help_of("flows"),
                           description="The flows the agent's packet sampler saw ([sampling] in the "
                           "agent's config).  Packets and bytes are estimates (samples times the "
                           "sampling rate).  Exit codes: 0 ok, 1 nothing matched or sampling off, "
                           "2 usage error, 3 agent unreachable.")
    fsub = flows.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    for name, func, help_text in (("list", flows_list, "the top flows over a window"),
                                  ("watch", flows_watch, "the top flows, again every interval")):
        p = fsub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--window", default="", help="how far back (e.g. 30s, 1m; default: all kept)")
        p.add_argument("--top", type=int, default=20, help="how many flows (default 20)")
        p.add_argument("--by", choices=("bytes", "packets"), default="bytes", help="rank by")
        p.add_argument("-i", "--interface", default="", help="interface name or glob")
        p.add_argument("--instance", default="", help="VM instance UUID or name")
        p.add_argument("--vni", type=int, default=None, help="VXLAN VNI (0: not VXLAN)")
        p.add_argument("--address", default="", help="IP or CIDR prefix, source or destination")
        if name == "watch":
            p.add_argument("--interval", default="5s", help="time between answers (default 5s)")
        add_connection_options(p)
        p.set_defaults(func=func)


def _duration(text: str, option: str) -> duration_pb2.Duration:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def _request(args) -> pb.ListFlowsRequest:
    if args.top < 0:
        raise UsageError("--top: must not be negative")
    flt = pb.FlowFilter(interface=args.interface, instance=args.instance, address=args.address)
    if args.vni is not None:
        flt.vni, flt.has_vni = args.vni, True
    req = pb.ListFlowsRequest(top=args.top, filter=flt,
                              order=pb.FLOW_ORDER_PACKETS if args.by == "packets" else pb.FLOW_ORDER_BYTES)
    if args.window:
        req.window.CopyFrom(_duration(args.window, "--window"))
    return req


def _endpoint(addr: str, port: int, proto: int) -> str:
    if not addr:
        return "-"
    host = f"[{addr}]" if ":" in addr else addr
    return f"{host}:{port}" if proto in (6, 17) else host


def _print(resp: pb.ListFlowsResponse) -> None:
    rows = []
    for f in resp.flows:
        proto = PROTOCOLS.get(f.protocol, str(f.protocol)) if f.src else f"0x{f.ethertype:04x}"
        if f.protocol in (1, 58):
            proto += f" {f.src_port}/{f.dst_port}"
        rows.append([f.interface, "out" if f.direction == pb.FLOW_DIRECTION_OUT else "in",
                     f.vm.instance_name or "-", str(f.vni or "-"), str(f.vlan or "-"), proto,
                     _endpoint(f.src, f.src_port, f.protocol), _endpoint(f.dst, f.dst_port, f.protocol),
                     number(float(f.packets)), number(float(f.bytes)) + "B"])
    window = resp.window.ToNanoseconds() / 1e9
    print(f"{resp.matched_flows} flow(s) over {window:.0f}s, {number(float(resp.matched_packets))} packets, "
          f"{number(float(resp.matched_bytes))}B; {len(resp.interfaces)} interface(s) sampled")
    if rows:
        table(["IFACE", "DIR", "VM", "VNI", "VLAN", "PROTO", "SOURCE", "DESTINATION", "PACKETS", "BYTES"],
              rows)


def flows_list(args) -> int:
    resp, rc = operation.read(args, STUB, "ListFlows", _request(args))
    if resp is None:
        return rc
    print_json(resp) if args.json else _print(resp)
    return 0 if resp.flows else EXIT_FAILED


def flows_watch(args) -> int:
    request = pb.WatchFlowsRequest(query=_request(args), interval=_duration(args.interval, "--interval"))
    conn = connection(args)
    with conn.channel() as ch:
        try:
            for resp in STUB(ch).WatchFlows(request):
                if args.json:
                    print_json(resp)
                else:
                    _print(resp)
                    print()
        except grpc.RpcError as exc:
            return operation.device_error(conn, ch, exc)
    return 0
