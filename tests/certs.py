"""A throwaway PKI for the TLS tests, made with ``cryptography``.

``make_pki(tmp_path)`` writes PEM files and returns their paths; an
:class:`Authority` can issue more (the rotation tests mint new server
certificates and a new client CA).  Keys are P-256 (fast to make) and are
written with mode 0600, as the agent demands of a private key.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    serial: int

    def read(self) -> tuple[bytes, bytes]:
        """(certificate chain PEM, private key PEM)"""
        return self.cert.read_bytes(), self.key.read_bytes()


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Authority:
    """A CA that writes what it issues under ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        self.cert_file = directory / f"{name}.crt"
        self.cert_file.write_bytes(self.pem)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, stem: str, cn: str | None = None, *, dns: tuple[str, ...] = (),
              uris: tuple[str, ...] = (), ips: tuple[str, ...] = (), server: bool = False,
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> CertFiles:
        """Issue a leaf certificate; files ``<stem>.crt`` and ``<stem>.key``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        serial = x509.random_serial_number()
        subject = _name(cn) if cn else x509.Name([])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(not_before or now - DAY)
            .not_valid_after(not_after or now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False))
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=not cn)
        cert = builder.sign(self.key, hashes.SHA256())
        files = CertFiles(self.directory / f"{stem}.crt", self.directory / f"{stem}.key", serial)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(files.key, key)
        return files

    def issue_server(self, stem: str = "server") -> CertFiles:
        return self.issue(stem, "hostagent test server", dns=("localhost",),
                          ips=("127.0.0.1", "::1"), server=True)


@dataclass(frozen=True)
class Pki:
    ca: Authority                 # the CA the agent trusts for clients, and that signs the server
    server: CertFiles             # 127.0.0.1, ::1, localhost
    viewer: CertFiles             # subject CN "viewer" only
    operator: CertFiles           # URI SAN spiffe://test/operator (and a DNS SAN, and a CN)
    admin: CertFiles              # DNS SAN admin.test only, no CN
    untrusted_ca: Authority
    untrusted_client: CertFiles   # CN "operator", signed by the untrusted CA
    expired_client: CertFiles     # CN "viewer", signed by the good CA, expired yesterday


def make_pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir(mode=0o700)
    ca = Authority(directory, "test-ca")
    untrusted = Authority(directory, "untrusted-ca")
    now = dt.datetime.now(dt.timezone.utc)
    return Pki(
        ca=ca,
        server=ca.issue_server(),
        viewer=ca.issue("viewer", "viewer"),
        operator=ca.issue("operator", "operator-cn", dns=("operator.test",),
                          uris=("spiffe://test/operator",)),
        admin=ca.issue("admin", None, dns=("admin.test",)),
        untrusted_ca=untrusted,
        untrusted_client=untrusted.issue("untrusted", "operator"),
        expired_client=ca.issue("expired", "viewer", not_before=now - 10 * DAY,
                                not_after=now - DAY),
    )
