"""Server-side TLS with mandatory client certificates, reloaded from disk.

``ServerTls(cert_file, key_file, client_ca_file).credentials()`` gives
``grpc.ServerCredentials`` (one per port) whose configuration gRPC asks for
again at every new connection's handshake.  The fetcher compares each file's
``(st_mtime_ns, st_size, st_ino)`` with what it last saw: unchanged means
"keep the current configuration" (``None``); changed means read, parse and
check all three files, and hand gRPC the new configuration.  Connections
already open keep the configuration they were made with, so a rotated
certificate or client CA applies to new connections without a restart.

A file that is missing, unreadable, unparsable, a key that does not match
the certificate, or a key readable by group/others, keeps the last good
configuration: one ``tls.reload_failed`` warning per changed state of the
files, never one per connection.  At construction the same faults raise
:class:`TlsError` naming the file.

TLS 1.0 and 1.1 are refused: gRPC core's minimum is TLS 1.2 (tests hold it).
"""
from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from cryptography import x509

from agent.logs import get_logger

log = get_logger(__name__)

_Stamp = tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino)


class TlsError(Exception):
    """A TLS file the agent cannot use."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class _Material:
    """Three files read and checked together."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes
    serial: int           # of the leaf certificate, for the log
    not_after: str


def _stamp(path: str) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(path: str, secret: bool = False) -> bytes:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise TlsError(path, "not a regular file")
            if secret and st.st_mode & 0o077:
                raise TlsError(path, f"private key is readable by group or others "
                                     f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
            return f.read()
    except FileNotFoundError:
        raise TlsError(path, "no such file") from None
    except PermissionError:
        raise TlsError(path, "permission denied") from None
    except IsADirectoryError:
        raise TlsError(path, "is a directory") from None
    except OSError as exc:
        raise TlsError(path, f"cannot read: {exc.strerror or exc}") from None


def _certificates(path: str, data: bytes) -> list[x509.Certificate]:
    from cryptography import x509
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsError(path, "no PEM certificate in the file")
    return certs


def _spki(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_material(cert_file: str, key_file: str, client_ca_file: str) -> _Material:
    """Read and check the three files; :class:`TlsError` names the first bad one."""
    # cryptography loads here, when [tls] is configured, not at every start.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    chain = _read(cert_file)
    key_pem = _read(key_file, secret=True)
    client_ca = _read(client_ca_file)
    leaf = _certificates(cert_file, chain)[0]
    _certificates(client_ca_file, client_ca)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsError(key_file, "private key is encrypted; the agent needs it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(key_file, f"not a usable PEM private key ({exc})") from None
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise TlsError(key_file, f"private key does not match the certificate in {cert_file}")
    return _Material(chain, key_pem, client_ca, leaf.serial_number,
                     leaf.not_valid_after_utc.isoformat())


def _configuration(m: _Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(((m.key, m.cert_chain),),
                                                     root_certificates=m.client_ca)


class ServerTls:
    """The server's certificate, its key and the CA that client certificates
    must chain to; every client must present one (mutual TLS)."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str) -> None:
        self.paths = (os.fspath(cert_file), os.fspath(key_file), os.fspath(client_ca_file))
        self._lock = threading.Lock()
        self._seen = self._stamps()
        self._material = load_material(*self.paths)
        self.reloads = 0          # new configurations loaded after the first
        self.reload_failures = 0  # changed states of the files that were refused

    @property
    def serial(self) -> int:
        """Serial number of the server certificate being served to new connections."""
        return self._material.serial

    def _stamps(self) -> tuple[_Stamp | None, ...]:
        return tuple(_stamp(p) for p in self.paths)

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ONE ``add_secure_port`` call: each one remembers which
        configuration its port has, so call this once per port."""
        with self._lock:
            material, handed = self._material, self.reloads

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            """Called by gRPC core at each new connection's handshake on the port."""
            nonlocal handed
            current, generation = self._refresh()
            if generation == handed:
                return None
            handed = generation
            return _configuration(current)

        return grpc.dynamic_ssl_server_credentials(
            _configuration(material), fetch, require_client_authentication=True)

    def _refresh(self) -> tuple[_Material, int]:
        """Reload if any file changed; (the good material, its generation)."""
        stamps = self._stamps()
        with self._lock:
            if stamps == self._seen:
                return self._material, self.reloads
            self._seen = stamps
            try:
                material = load_material(*self.paths)
            except TlsError as exc:
                self.reload_failures += 1
                log.warning("tls.reload_failed", file=exc.path, error=exc.reason,
                            serving_serial=f"{self._material.serial:x}")
                return self._material, self.reloads
            if material == self._material:
                return self._material, self.reloads  # touched, not changed
            self._material = material
            self.reloads += 1
            generation = self.reloads
        log.info("tls.reloaded", cert=self.paths[0], client_ca=self.paths[2],
                 serial=f"{material.serial:x}", not_after=material.not_after)
        return material, generation
