"""``hostagent serve``, ``check-config`` and ``audit verify``: the commands
that run on the node itself, not against a running agent.  The daemon and
the audit code are imported only when one of them runs."""
from __future__ import annotations

import argparse
import os
import sys

from agent.cli.commands import help_of
from agent.cli.exits import EXIT_FAILED, EXIT_USAGE, UsageError

DEFAULT_AUDIT_FILE = "/var/lib/hostagent/audit.jsonl"


def add_parsers(sub) -> None:
    serve = sub.add_parser("serve", help=help_of("serve"),
                           description="Run the agent in the foreground.  Flags override the "
                                       "config file, which overrides the embedded defaults.")
    serve.add_argument("--config", metavar="FILE", help="TOML config (default: embedded defaults; "
                       "also $HOSTAGENT_CONFIG)")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help='gRPC TCP listener ("" disables)')
    serve.add_argument("--grpc-socket", metavar="PATH", help='gRPC unix socket ("" disables)')
    serve.add_argument("--metrics-listen", metavar="HOST:PORT", help='Prometheus /metrics ("" disables)')
    serve.add_argument("--state-dir", metavar="DIR", help="persistent state directory")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", choices=("logfmt", "json"))
    serve.set_defaults(func=run_serve)

    check = sub.add_parser("check-config", help=help_of("check-config"),
                           description="Validate a config file; a bad one is named by its first "
                                       "bad key and exits 2.")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the effective config")
    check.set_defaults(func=check_config)

    audit = sub.add_parser("audit", help=help_of("audit"), description="The audit trail.")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check the hash chain of an audit file",
                                  description="Check the hash chain of an audit file; exits 1 "
                                              "and names every damaged or edited region.")
    verify.add_argument("file", metavar="FILE", nargs="?", default=DEFAULT_AUDIT_FILE,
                        help=f"default: {DEFAULT_AUDIT_FILE}")
    verify.set_defaults(func=audit_verify)


def run_serve(args: argparse.Namespace) -> int:
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


def check_config(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, config_to_toml
    from agent.features import load_agent_config

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


def audit_verify(args: argparse.Namespace) -> int:
    from agent.audit import verify

    try:
        result = verify(args.file)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
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
    return EXIT_FAILED
