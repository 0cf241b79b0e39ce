"""Every ``hostagent`` command: the module that holds it and its one-line
help, in the order ``hostagent --help`` lists them.

The parser is built from this table first, and only the module of the
command being run is imported (``agent.cli.build_parser``): ``serve``
loads no client module, a client command no other client command, and
``hostagent --help`` neither grpc nor protobuf.  Each module takes its
commands' help from here, so the listing and the commands never disagree.
"""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("admin", "run the agent in the foreground"),
    "check-config": ("admin", "validate a config file and exit"),
    "audit": ("admin", "the audit trail"),
    "status": ("telemetry", "health of the agent and of each collector"),
    "metrics": ("telemetry", "current values (optionally window statistics)"),
    "inventory": ("telemetry", "hardware and OS inventory"),
    "bmc": ("bmc", "the node's BMC (IPMI): power, boot device, identify, sensors, event log"),
    "gpu": ("gpu", "the node's NVIDIA GPUs: state, power limit, persistence, MIG"),
    "network": ("network", "host networking in nmstate's format: show, apply, confirm, rollback"),
    "flows": ("flows", "sampled traffic by flow: top talkers per interface, VM, VNI"),
}


def help_of(command: str) -> str:
    return COMMANDS[command][1]
