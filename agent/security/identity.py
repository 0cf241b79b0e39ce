"""Who is calling: a name from the client certificate, or the unix uid.

Identities are the strings the roles table maps, qualified by their source
so that one source can never name itself into another's namespace:

- a client certificate gives ``cert:`` and its first URI SAN
  (``cert:spiffe://region1/control-plane``), else its first DNS SAN
  (``cert:ops1.example``), else its subject CN.  A certificate whose CN is
  ``uid:0`` is ``cert:uid:0``, not root;
- a unix-socket caller gives ``unix:uid:<number>`` (``unix:uid:0``), read with
  SO_PEERCRED by :class:`agent.security.peercred.PeerCredProxy`;
- anything else (plaintext TCP not relayed by the proxy) has no identity here;
  ``agent.security.access`` names it ``insecure`` where plaintext is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import grpc

from agent.config_values import CERT_PREFIX, INSECURE, UNIX_PREFIX

CERT = "cert"
UID = "uid"
PLAINTEXT = INSECURE


@dataclass(frozen=True)
class Identity:
    name: str   # what the roles table maps: "cert:spiffe://...", "unix:uid:0", "insecure"
    kind: str   # CERT, UID or PLAINTEXT
    peer: str   # the transport peer: "ipv4:10.0.0.5:40112" or "unix uid=0 pid=123"


class _Peer(Protocol):
    uid: int
    pid: int


class PeerLookup(Protocol):
    """What :func:`identify` needs of the unix-socket proxy."""

    def lookup(self, grpc_peer: str) -> _Peer | None: ...


def uid_identity(uid: int) -> str:
    return f"{UNIX_PREFIX}uid:{uid}"


def cert_identity(name: str) -> str:
    return CERT_PREFIX + name


def _first(values: Sequence[bytes] | None) -> str | None:
    for value in values or ():
        text = value.decode("utf-8", "replace").strip()
        if text:
            return text
    return None


def name_from_pem(pem: bytes) -> str | None:
    """URI SAN, else DNS SAN, else subject CN of a PEM certificate; None if
    it has none of them (or is not a certificate)."""
    # cryptography loads here, at the first TLS peer, not at every start
    # (a twentieth of a second an agent without [tls] never needs).
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError:  # a malformed extension: trust nothing in it
        return None
    if san is not None:
        for kind in (x509.UniformResourceIdentifier, x509.DNSName):
            names = [n for n in san.get_values_for_type(kind) if n]
            if names:
                return names[0]
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    if isinstance(cn, bytes):
        cn = cn.decode("utf-8", "replace")
    return cn or None


def identity_from_cert(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The identity in a verified peer certificate, from gRPC's
    ``context.auth_context()``; None when the connection has no certificate.

    The leaf certificate (``x509_pem_cert``) is authoritative.  Without it,
    gRPC's own split of the SANs (``peer_uri``, ``peer_dns``) and
    ``x509_common_name`` are used in the same order.
    """
    pem = auth_context.get("x509_pem_cert")
    if pem:
        return name_from_pem(pem[0])
    for key in ("peer_uri", "peer_dns", "x509_common_name"):
        name = _first(auth_context.get(key))
        if name:
            return name
    return None


def identify(context: grpc.ServicerContext, peers: PeerLookup | None) -> Identity | None:
    """The caller of one RPC.  A TLS connection is identified by its
    certificate only; a plaintext one only if the unix-socket proxy relayed it."""
    peer = context.peer()
    auth = context.auth_context()
    if _first(auth.get("transport_security_type")) == "ssl":
        name = identity_from_cert(auth)
        return Identity(cert_identity(name), CERT, peer) if name else None
    relayed = peers.lookup(peer) if peers is not None else None
    if relayed is None:
        return None
    return Identity(uid_identity(relayed.uid), UID, f"unix uid={relayed.uid} pid={relayed.pid}")
