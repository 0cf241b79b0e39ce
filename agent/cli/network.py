"""``hostagent network``: the node's host networking through the agent
(``hostagent.v1.Network``), in nmstate's format.

``show`` prints the live state as nmstate YAML (valid input for ``apply``).
``apply FILE`` sends the file's text as it is: the agent parses and
validates it, so the client needs no YAML library and errors name the path
in the file (``desired.interfaces[0].mtu``).  ``apply``, ``confirm`` and
``rollback`` start an operation, wait for it and print its result
(:mod:`agent.cli.operation`: ``--request-id`` re-attaches instead of acting
twice).  Exit codes: 0 ok, 1 failed (the change was rolled back, or another
awaits confirmation), 2 usage error (a file that cannot be read, a config
the agent refuses as invalid), 3 agent unreachable.
"""
from __future__ import annotations

import sys

from google.protobuf import json_format

from agent.cli import operation
from agent.cli.client import add_connection_options, add_request_id_option
from agent.cli.commands import help_of
from agent.cli.display import print_json
from agent.cli.exits import UsageError, warn
from agent.gen.hostagent.v1 import network_pb2 as pb
from agent.gen.hostagent.v1 import network_pb2_grpc

STUB = network_pb2_grpc.NetworkStub


def add_parser(sub) -> None:
    net = sub.add_parser("network", help=help_of("network"),
                         description="The node's interfaces, addresses and routes, declared in "
                         "nmstate's YAML/JSON format and applied by the agent as one transaction "
                         "(docs/network.md).  Exit codes: 0 ok, 1 failed (rolled back), 2 usage "
                         "error or invalid config, 3 agent unreachable.")
    net_sub = net.add_subparsers(dest="network_command", required=True, metavar="ACTION")

    def cmd(name: str, help_text: str, func, mutating: bool = True):
        p = net_sub.add_parser(name, help=help_text, description=help_text)
        if mutating:
            add_request_id_option(p)
        add_connection_options(p)
        p.set_defaults(func=func)
        return p

    p = cmd("show", "the live state as nmstate YAML (--json: the typed state)", network_show,
            mutating=False)
    p.add_argument("--managed", action="store_true", help="only the interfaces the agent manages")
    p = cmd("apply", "bring the node to the state in FILE (nmstate YAML or JSON; - for stdin)",
            network_apply)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--confirm-timeout", metavar="DURATION",
                   help="roll back unless 'hostagent network confirm' comes within this time "
                        "(e.g. 2m; 1s to 1h)")
    p.add_argument("--force", action="store_true",
                   help="allow taking down or removing protected interfaces, or the one carrying "
                        "this connection (admin only)")
    cmd("confirm", "keep the apply that awaits confirmation", network_confirm)
    cmd("rollback", "return to the state before the last apply", network_rollback)


def network_show(args) -> int:
    resp, rc = operation.read(args, STUB, "GetNetworkState",
                              pb.GetNetworkStateRequest(managed_only=args.managed))
    if resp is None:
        return rc
    if args.json:
        print_json(resp)
        return 0
    if resp.HasField("confirm_deadline"):
        warn(f"an apply awaits confirmation until {resp.confirm_deadline.ToJsonString()}")
    sys.stdout.write(resp.nmstate)
    return 0


def _plan_lines(plan: pb.NetworkPlan) -> list[str]:
    if not plan.steps:
        return ["no changes: the node already is in this state"]
    width = len(str(len(plan.steps)))
    return [f"{len(plan.steps)} change(s):"] + [
        f"  {n:>{width}}. {s.action} {s.target}" + (f": {s.detail}" if s.detail else "")
        for n, s in enumerate(plan.steps, 1)]


def _read_file(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


class _ApplyStub:
    """ApplyNetworkConfig answers the plan and the operation: print the plan
    (stderr, beside the operation's name) and hand the operation on."""

    def __init__(self, channel) -> None:
        self._stub = STUB(channel)

    def ApplyNetworkConfig(self, request, timeout=None):  # noqa: N802 - the RPC's name
        resp = self._stub.ApplyNetworkConfig(request, timeout=timeout)
        print("\n".join(_plan_lines(resp.plan)), file=sys.stderr)
        return resp.operation


def _summary(op) -> str:
    r = json_format.MessageToDict(op.result)
    steps = int(r.get("steps", 0))
    if op.kind == "network.apply":
        text = f"applied: {steps} change(s)" if r.get("changed") else "applied: nothing to change"
        if r.get("confirm_deadline"):
            text += (f"; rolled back at {r['confirm_deadline']} unless confirmed "
                     "(hostagent network confirm)")
        return text
    if op.kind == "network.rollback":
        return f"rolled back: {steps} change(s)"
    return "confirmed: the changes are kept"


def network_apply(args) -> int:
    req = pb.ApplyNetworkConfigRequest(desired=_read_file(args.file), dry_run=args.dry_run,
                                       force=args.force)
    if args.confirm_timeout:
        from agent.config_values import parse_duration
        try:
            req.confirm_timeout.FromNanoseconds(int(parse_duration(args.confirm_timeout) * 1e9))
        except ValueError as exc:
            raise UsageError(f"--confirm-timeout: {exc}") from None
    if args.dry_run:
        if args.request_id:
            raise UsageError("--request-id goes with a real apply, not --dry-run")
        resp, rc = operation.read(args, STUB, "ApplyNetworkConfig", req)
        if resp is None:
            return rc
        if args.json:
            print_json(resp.plan)
        else:
            print("\n".join(_plan_lines(resp.plan)))
        return 0
    return operation.run(args, _ApplyStub, "ApplyNetworkConfig", req, "network apply", _summary)


def network_confirm(args) -> int:
    return operation.run(args, STUB, "ConfirmNetworkConfig", pb.ConfirmNetworkConfigRequest(),
                         "network confirm", _summary)


def network_rollback(args) -> int:
    return operation.run(args, STUB, "RollbackNetworkConfig", pb.RollbackNetworkConfigRequest(),
                         "network rollback", _summary)
