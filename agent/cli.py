"""``hostagent`` command line: run the agent, check a config, and talk to a
running agent (status, metrics, inventory) the way an operator would at 3 a.m.
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
    print(f"{args.file}: TAMPERED at line {result.first_bad_line}: {result.reason}", file=sys.stderr)
    return 1


def _client(args, name: str) -> int:
    from agent import cli_client

    return getattr(cli_client, name)(args)


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
        p.add_argument("--target", metavar="ADDR", default=os.environ.get("HOSTAGENT_TARGET"),
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
