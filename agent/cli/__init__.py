"""The ``hostagent`` command (``[project.scripts]``: ``agent.cli:main``).

One module per group of commands: :mod:`.admin` (serve, check-config,
audit), :mod:`.telemetry` (status, metrics, inventory), :mod:`.bmc`,
:mod:`.gpu` (with :mod:`.operation`, what the device groups share); what
client commands share is public in :mod:`.client` (reaching the agent),
:mod:`.display` (values, tables, JSON) and :mod:`.exits` (exit codes).
Client commands import no server code: the daemon, the servicers and the
collectors load only for ``serve`` and ``check-config``.  Only the module of
the command being run is imported (:mod:`.commands` lists them all for
``--help``): ``serve`` loads no client module and no client command the
daemon, which keeps the agent's start short (docs/benchmarks.md, "Start-up").
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

from agent import __version__
from agent.cli.commands import COMMANDS
from agent.cli.exits import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE, UsageError, warn

DESCRIPTION = """\
hostagent runs the per-node agent (serve), checks its config and its audit
trail, and talks to a running agent the way an operator would: its health
(status), current metric values and window statistics (metrics), the
hardware inventory (inventory), the node's BMC (bmc), its NVIDIA GPUs
(gpu), its host networking (network) and its sampled traffic (flows)."""

EPILOG = f"""\
Client commands reach the local agent over its unix socket; --agent HOST:PORT
names another, and --cert/--key/--ca reach it over mutual TLS (each also from
$HOSTAGENT_AGENT, $HOSTAGENT_CERT, $HOSTAGENT_KEY, $HOSTAGENT_CA, or a
[client] table in --client-config FILE).  'hostagent COMMAND --help' lists
a command's options.

{textwrap.fill(EXIT_CODES_HELP + ".", 78)}"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``command`` (one of :data:`.commands.COMMANDS`): that
    command's module adds its commands with their options; every other
    command is listed by name and help only, its module not imported.
    Without ``command`` (``hostagent --help``, a typo) every command is listed."""
    parser = argparse.ArgumentParser(prog="hostagent", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hostagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = COMMANDS[command][0] if command in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        if module_name != wanted:
            sub.add_parser(name, help=help_text, add_help=False)
        elif name not in sub.choices:  # its module adds all of its commands, in this order
            module = importlib.import_module(f"agent.cli.{module_name}")
            (getattr(module, "add_parsers", None) or module.add_parser)(sub)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option
    (``hostagent``'s own options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None, plugins=()) -> int:
    """Run one command; its exit code.  ``plugins`` (agent.daemon.Plugin)
    add operation kinds and services to ``serve``; the test suite uses this
    for its test-only mutating RPC.

    A reader of stdout that goes away (``hostagent metrics | head -1``) ends
    the command quietly with 141, what a shell reports for ``ls | head``."""
    try:
        try:
            return _run(argv, tuple(plugins))
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # a reader gone after the last write shows here, not at exit
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_PIPE


def _run(argv: list[str] | None, plugins: tuple) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(command_of(argv)).parse_args(argv)
    args.plugins = plugins
    try:
        return args.func(args)
    except UsageError as exc:
        warn(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _stdout_to_devnull() -> None:
    """What is still buffered for the closed pipe goes nowhere, so that the
    interpreter's last flush raises nothing either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
