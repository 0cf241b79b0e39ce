"""What every client command shares: which agent to talk to and how (its
unix socket, plaintext loopback TCP, or mutual TLS to a remote agent), the
options and environment variables that say so, and how a failed call is
reported.

Each setting comes from, first to last: the command line, the environment,
the ``[client]`` table of ``--client-config FILE``, the default::

    --agent ADDR          $HOSTAGENT_AGENT        agent = "node7:9447"
    --cert FILE           $HOSTAGENT_CERT         cert = "client.crt"
    --key FILE            $HOSTAGENT_KEY          key = "client.key"
    --ca FILE             $HOSTAGENT_CA           ca = "ca.crt"
    --server-name NAME    $HOSTAGENT_SERVER_NAME  server_name = "node7.example"
    --client-config FILE  $HOSTAGENT_CLIENT_CONFIG

Relative paths in the file are relative to the file.  ``$HOSTAGENT_TARGET``
(the old name of ``$HOSTAGENT_AGENT``) still works for one release, with a
notice on stderr.
"""
from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass

import grpc

from agent.cli.exits import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, UsageError, warn

SETTINGS = ("agent", "cert", "key", "ca", "server_name")
ENV = {name: f"HOSTAGENT_{name.upper()}" for name in SETTINGS}
ENV_CLIENT_CONFIG = "HOSTAGENT_CLIENT_CONFIG"
ENV_DEPRECATED_AGENT = "HOSTAGENT_TARGET"
_PATHS = ("cert", "key", "ca")


class DeprecatedAgentAlias(argparse.Action):
    """``--target ADDR`` where it used to mean the agent: hidden from
    ``--help``, stored as ``--agent``, with a one-line notice on stderr."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warn(f"{option_string} is deprecated here and goes away in the next release; use --agent "
             "(-t/--target names a BMC, in 'hostagent bmc')")
        setattr(namespace, self.dest, values)


def add_request_id_option(parser: argparse.ArgumentParser) -> None:
    """``--request-id`` of a mutating command: one help text for every one."""
    parser.add_argument("--request-id", metavar="ID",
                        help="idempotency key (default: a new UUID, printed); reuse the printed "
                             "one to re-attach to an action instead of repeating it")


def add_connection_options(parser: argparse.ArgumentParser, *, deprecated_target: bool = False) -> None:
    """``--agent``, the mTLS options, ``--timeout`` and ``--json``."""
    group = parser.add_argument_group(
        "agent connection", "Each also from the environment ($HOSTAGENT_AGENT, $HOSTAGENT_CERT, "
        "$HOSTAGENT_KEY, $HOSTAGENT_CA, $HOSTAGENT_SERVER_NAME) or from the [client] table of "
        "--client-config FILE ($HOSTAGENT_CLIENT_CONFIG); the command line wins.")
    group.add_argument("--agent", metavar="ADDR",
                       help="the agent: unix:PATH or HOST:PORT (default: the local agent's unix "
                            "socket, else 127.0.0.1:9447; with TLS options, 127.0.0.1:9447)")
    if deprecated_target:
        group.add_argument("--target", dest="agent", metavar="ADDR", action=DeprecatedAgentAlias)
    group.add_argument("--cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    group.add_argument("--key", metavar="FILE", help="its private key (PEM)")
    group.add_argument("--ca", metavar="FILE",
                       help="CA certificate(s) (PEM) that signed the agent's certificate "
                            "(default: the system's)")
    group.add_argument("--server-name", metavar="NAME",
                       help="name to expect in the agent's certificate, when ADDR is not in it "
                            "(e.g. an IP address)")
    group.add_argument("--client-config", metavar="FILE",
                       help="TOML file with a [client] table: agent, cert, key, ca, server_name")
    group.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                       help="per call (default 5)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


@dataclass(frozen=True)
class Connection:
    """Where the agent is and the TLS material to reach it (PEM bytes)."""

    address: str
    timeout: float = 5.0
    cert: bytes = b""
    key: bytes = b""
    ca: bytes = b""
    server_name: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.cert or self.ca)

    def channel(self) -> grpc.Channel:
        if not self.tls:
            return grpc.insecure_channel(self.address)
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca or None,
                                             private_key=self.key or None,
                                             certificate_chain=self.cert or None)
        options = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return grpc.secure_channel(self.address, creds, options=options)


def connection(args: argparse.Namespace) -> Connection:
    """The connection the options, environment and client config ask for;
    :class:`UsageError` names the option, variable or key at fault."""
    config_path = args.client_config or os.environ.get(ENV_CLIENT_CONFIG, "")
    from_file = _read_client_config(config_path) if config_path else {}
    chosen: dict[str, tuple[str, str]] = {}  # setting -> (value, where it came from)
    for name in SETTINGS:
        flag = getattr(args, name, None)
        if flag:
            chosen[name] = (flag, "--" + name.replace("_", "-"))
        elif os.environ.get(ENV[name]):
            chosen[name] = (os.environ[ENV[name]], "$" + ENV[name])
        elif name == "agent" and os.environ.get(ENV_DEPRECATED_AGENT):
            warn(f"${ENV_DEPRECATED_AGENT} is deprecated and goes away in the next release; "
                 f"use ${ENV['agent']}")
            chosen[name] = (os.environ[ENV_DEPRECATED_AGENT], "$" + ENV_DEPRECATED_AGENT)
        elif name in from_file:
            chosen[name] = (from_file[name], f"{config_path}: client.{name}")
    if ("cert" in chosen) != ("key" in chosen):
        given, missing = ("cert", "key") if "cert" in chosen else ("key", "cert")
        raise UsageError(f"{chosen[given][1]} needs a {missing} too (--{missing}): a client "
                         "certificate and its private key go together")
    pem = {name: _read_pem(*chosen[name]) for name in _PATHS if name in chosen}
    tls = bool(pem)
    if "agent" in chosen:
        address, where = chosen["agent"]
        if tls and address.startswith("unix:"):
            raise UsageError(f"{where}: TLS options are for a HOST:PORT address; over the unix "
                             "socket the agent knows you by your uid")
    else:
        address = default_address(tls)
    server_name = chosen.get("server_name", ("", ""))[0]
    return Connection(address, args.timeout, pem.get("cert", b""), pem.get("key", b""),
                      pem.get("ca", b""), server_name)


def default_address(tls: bool = False) -> str:
    """The local agent: its unix socket if it is there, else its TCP
    listener (always the TCP listener for TLS)."""
    from agent.config import DEFAULT_GRPC_LISTEN, default_grpc_socket

    sock = default_grpc_socket(os.environ, os.getuid())
    if not tls and os.path.exists(sock):
        return f"unix:{sock}"
    return DEFAULT_GRPC_LISTEN


def _read_pem(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise UsageError(f"{where}: {path} is not PEM")
    return data


def _read_client_config(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"--client-config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None
    table = doc.get("client")
    if not isinstance(table, dict):
        raise UsageError(f"{path}: no [client] table")
    out = {}
    for key, value in table.items():
        if key not in SETTINGS:
            raise UsageError(f"{path}: client.{key}: unknown key (known: {', '.join(SETTINGS)})")
        if not isinstance(value, str):
            raise UsageError(f"{path}: client.{key}: expected a string")
        if key in _PATHS and value:
            value = os.path.join(os.path.dirname(os.path.abspath(path)), value)
        if value:
            out[key] = value
    return out


def report_error(conn: Connection, exc: grpc.RpcError) -> int:
    """One line on stderr for a failed call; the exit code for it."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        warn(f"cannot reach the agent at {conn.address}: {exc.details()}")
        return EXIT_UNREACHABLE
    warn(f"{code.name}: {exc.details()}")
    return EXIT_USAGE if code is grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
