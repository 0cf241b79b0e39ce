"""Who reaches the API, assembled from the config: the TCP listener (mutual
TLS, or plaintext on loopback), the unix socket (through the peer-credential
proxy, so the caller's uid is its identity), the roles policy and the audit
log.  The daemon owns one :class:`Access`, asks it to bind listeners, and
gives its policy, caller identification and audit trail to the API's
auth interceptor (``agent.api.auth``): the API depends on security, never
the reverse.
"""
from __future__ import annotations

import os
from typing import Iterable

import grpc
from google.protobuf.descriptor import FileDescriptor

from agent.audit import AuditLog
from agent.config import Config
from agent.config_values import is_loopback, split_hostport
from agent.logs import get_logger
from agent.security.identity import PLAINTEXT, Identity, identify
from agent.security.peercred import PeerCredProxy
from agent.security.policy import Policy, RolesFileError, load_roles_file, method_rules
from agent.security.tls import ServerTls

log = get_logger(__name__)


def build_policy(cfg: Config, files: Iterable[FileDescriptor]) -> Policy:
    """Config identities, then the roles file's (which win).  Raises
    RolesFileError for a bad roles file.  Keys written before identities
    were qualified are logged with how they are read, once per load."""
    identities = dict(cfg.auth.identities)
    legacy = dict(cfg.auth.unqualified)
    if cfg.auth.roles_file:
        table, old = load_roles_file(cfg.auth.roles_file)
        identities.update(table)
        legacy.update(old)
    for key, read_as in sorted(legacy.items()):
        log.warning("auth.unqualified_identity", written=key, read_as=read_as,
                    action=f"write it as {read_as!r} (see docs/security.md, identities)")
    return Policy(method_rules(files), identities)


class Access:
    def __init__(self, cfg: Config) -> None:
        self._files: tuple[FileDescriptor, ...] = ()
        self.policy = Policy({}, {})  # denies everything until use_contract()
        self.audit = AuditLog(os.path.join(cfg.state_dir, "audit.jsonl"))
        self.tls = (ServerTls(cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.client_ca_file)
                    if cfg.tls.enabled else None)
        self.plaintext_tcp = bool(cfg.server.grpc_listen) and self.tls is None
        self.proxy: PeerCredProxy | None = None
        self._cfg = cfg

    def use_contract(self, files: Iterable[FileDescriptor]) -> None:
        """Read the required roles of every served method; build the policy.
        Raises RolesFileError for a bad roles file."""
        self._files = tuple(files)
        self.policy = build_policy(self._cfg, self._files)

    def identify(self, context: grpc.ServicerContext) -> Identity | None:
        who = identify(context, self.proxy)
        if who is None and self.plaintext_tcp and context.auth_context().get(
                "transport_security_type") != [b"ssl"]:
            return Identity(PLAINTEXT, PLAINTEXT, context.peer())
        return who

    def bind(self, server: grpc.Server) -> list[str]:
        """Add the listeners to ``server`` (before it starts); return their
        addresses as shown to operators."""
        cfg = self._cfg.server
        shown = []
        if cfg.grpc_listen:
            host, _ = split_hostport(cfg.grpc_listen)
            if self.tls is not None:
                port = server.add_secure_port(cfg.grpc_listen, self.tls.credentials())
            else:
                if not is_loopback(host):
                    log.warning("security.insecure_listener", address=cfg.grpc_listen,
                                reason="server.insecure = true: plaintext gRPC reachable from the "
                                       "network, callers identified as 'insecure'")
                port = server.add_insecure_port(cfg.grpc_listen)
            if port == 0:
                raise OSError(f"cannot listen on {cfg.grpc_listen}")
            shown.append(f"{cfg.grpc_listen.rsplit(':', 1)[0]}:{port}")
        if cfg.grpc_socket:
            # gRPC cannot tell a unix peer's uid; the proxy can (SO_PEERCRED)
            # and relays to this loopback port, where it is looked up.
            internal = server.add_insecure_port("127.0.0.1:0")
            if internal == 0:
                raise OSError("cannot open the internal listener for the unix socket")
            self.proxy = PeerCredProxy(cfg.grpc_socket, ("127.0.0.1", internal))
            shown.append(f"unix:{cfg.grpc_socket}")
        return shown

    def start(self) -> None:
        if self.proxy is not None:
            self.proxy.start()

    def reload(self, cfg: Config) -> None:
        """New identities and roles file; a bad roles file keeps the last good policy."""
        try:
            self.policy = build_policy(cfg, self._files)
            self._cfg = cfg
        except RolesFileError as exc:
            log.error("auth.reload_failed", error=str(exc), action="keeping the previous roles")
            return
        log.info("auth.reloaded", identities=len(self.policy.identities))

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        self.audit.close()
