"""``hostagent`` command line: run the agent, check a config, and talk to a
running agent (status, metrics, inventory, bmc) the way an operator would at 3 a.m.
"""
from __future__ import annotations

import argparse
import os
import sys

from agent import __version__

EXIT_USAGE = 2


def _serve(args) -> int:
    from agent.daemon import serve

    overrides = {key: value for key, value in (
        ("server.grpc_listen", args.grpc_listen),
        ("server.grpc_socket", args.grpc_socket),
        ("server.metrics_listen", args.metrics_listen),
        ("state_dir", args.state_dir),
        ("log.level", args.log_level),
        ("log.format", args.log_format),
    ) if value is not None}
    return serve(args.config or os.environ.get("HOSTAGENT_CONFIG"), overrides, args.plugins)


def _check_config(args) -> int:
    from agent.config import ConfigError, config_to_toml
    from agent.daemon import load_agent_config

    try:
        cfg = load_agent_config(args.file)
    except ConfigError as exc:
        print(f"hostagent: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print:
        print(config_to_toml(cfg), end="")
    else:
        print(f"{args.file}: ok")
    return 0


def _audit_verify(args) -> int:
    from agent.audit import verify

    result = verify(args.file)
    if result.ok:
        print(f"{args.file}: ok, {result.records} records, hash chain intact")
        return 0
    # Every region, one line each: one edit must not hide another.  A sealed
    # one is a write the agent found cut short at start (a crash), not an edit.
    for region in result.regions:
        what = "DAMAGED" if region.sealed else "TAMPERED"
        print(f"{args.file}: {what} at {region.where}: {region.reason}", file=sys.stderr)
    print(f"{args.file}: {len(result.regions)} bad region(s); {result.verified} records verified",
          file=sys.stderr)
    return 1


def _client(args, name: str) -> int:
    from agent import cli_client

    return getattr(cli_client, name)(args)


def _bmc(args) -> int:
    from agent import cli_bmc

    return getattr(cli_bmc, f"bmc_{args.bmc_command}")(args)


def _add_bmc(sub) -> None:
    bmc = sub.add_parser("bmc", help="the node's BMC (IPMI): power, boot device, identify, sensors, "
                         "event log", description="The BMCs the agent watches ([[bmc.targets]]), "
                         "through the agent.  Actions that change something wait for the agent's "
                         "operation to end and exit 0 only when it succeeded.  Exit codes: 0 ok, 1 "
                         "failed (or a BMC down, for list), 2 usage error, 3 agent unreachable.")
    bmc_sub = bmc.add_subparsers(dest="bmc_command", required=True, metavar="ACTION")

    def cmd(name: str, help_text: str, target: bool = True, mutating: bool = False):
        p = bmc_sub.add_parser(name, help=help_text, description=help_text)
        if target:
            p.add_argument("-t", "--target", dest="bmc", metavar="BMC", default="",
                           help="BMC target name from the agent config (default: the local BMC, "
                                "or the only one)")
        if mutating:
            p.add_argument("--request-id", metavar="ID",
                           help="idempotency key (default: a new UUID, printed); reuse the printed "
                                "one to re-attach to an action instead of repeating it")
        p.add_argument("--agent", metavar="ADDR", default=os.environ.get("HOSTAGENT_TARGET"),
                       help="agent address: unix:PATH or HOST:PORT (default: the local agent's "
                            "unix socket, else its TCP port; also $HOSTAGENT_TARGET)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=_bmc)
        return p

    cmd("list", "the configured BMCs and whether each answers", target=False)
    cmd("sensors", "every sensor with its reading and health, read now")
    power = cmd("power", "print the power state (on/off), or power on, off, soft (ACPI), cycle, "
                "reset and wait until the BMC reports the new state", mutating=True)
    power.add_argument("action", nargs="?", choices=("on", "off", "soft", "cycle", "reset"),
                       help="omit to print the current state")
    power.add_argument("--force", action="store_true", help="allow taking the agent's own host "
                       "down (a local target; admin only)")
    power.add_argument("--wait-timeout", metavar="DURATION",
                       help="how long the agent waits for the new state, e.g. 90s (default 60s)")
    boot = cmd("bootdev", "print the boot device override, or set it (read back to check)",
               mutating=True)
    boot.add_argument("device", nargs="?", choices=("pxe", "disk", "cdrom", "bios-setup", "default"),
                      help="omit to print the current override; default removes it")
    boot.add_argument("--persistent", action="store_true", help="every boot, not just the next")
    boot.add_argument("--uefi", action="store_true", help="UEFI boot (default legacy BIOS)")
    ident = cmd("identify", "turn the chassis identify LED on or off", mutating=True)
    ident.add_argument("state", choices=("on", "off"))
    ident.add_argument("--seconds", type=int, metavar="N",
                       help="with on: for N seconds, 1-255 (default: until turned off)")
    sel = cmd("sel", "the system event log, oldest first; 'clear' empties it (admin)", mutating=True)
    sel.add_argument("action", nargs="?", choices=("clear",), help="omit to print the log")
    sel.add_argument("--last", type=int, metavar="N", help="only the newest N entries")
    cmd("info", "the BMC's identity: firmware, GUID, manufacturer, FRU")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hostagent", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hostagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the agent in the foreground")
    serve.add_argument("--config", metavar="FILE", help="TOML config (default: embedded defaults; "
                       "also $HOSTAGENT_CONFIG)")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help='gRPC TCP listener ("" disables)')
    serve.add_argument("--grpc-socket", metavar="PATH", help='gRPC unix socket ("" disables)')
    serve.add_argument("--metrics-listen", metavar="HOST:PORT", help='Prometheus /metrics ("" disables)')
    serve.add_argument("--state-dir", metavar="DIR", help="persistent state directory")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", choices=("logfmt", "json"))
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the effective config")
    check.set_defaults(func=_check_config)

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check the hash chain of an audit file")
    verify.add_argument("file", metavar="FILE", nargs="?", default="/var/lib/hostagent/audit.jsonl",
                        help="default: /var/lib/hostagent/audit.jsonl")
    verify.set_defaults(func=_audit_verify)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--target", "--agent", dest="target", metavar="ADDR",
                       default=os.environ.get("HOSTAGENT_TARGET"),
                       help="agent address: unix:PATH or HOST:PORT (default: the local "
                            "agent's unix socket, else its TCP port; also $HOSTAGENT_TARGET)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=lambda a, n=name: _client(a, n.replace("-", "_")))
        return p

    client("status", "health of the agent and of each collector")
    metrics = client("metrics", "current values (optionally window statistics)")
    metrics.add_argument("names", nargs="*", metavar="NAME", help="metric names or globs")
    metrics.add_argument("-l", "--label", action="append", default=[], metavar="MATCHER",
                         help="label matcher: name=value, name!=value, name=~regex, name!~regex")
    metrics.add_argument("-w", "--window", metavar="DURATION",
                         help="add min/max/mean/p50/p90/p99 over this window, e.g. 5m")
    inventory = client("inventory", "hardware and OS inventory")
    inventory.add_argument("--refresh", action="store_true", help="re-read the hardware now")
    _add_bmc(sub)
    return parser


def main(argv: list[str] | None = None, plugins=()) -> int:
    """``plugins`` (agent.daemon.Plugin) add operation kinds and services to
    ``serve``; the test suite uses this for its test-only mutating RPC."""
    args = build_parser().parse_args(argv)
    args.plugins = tuple(plugins)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
