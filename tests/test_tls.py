"""Mutual TLS: a real gRPC server with ServerTls credentials, real clients
(gRPC and Python ``ssl``), certificates made by tests/certs.py."""
from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import warnings
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from agent.security.identity import Identity, identify, identity_from_cert, name_from_pem
from agent.config_values import is_loopback
from agent.security.tls import ServerTls, TlsError
from tests.certs import Authority, CertFiles, make_pki

_CLIENT_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]  # a new connection per channel


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def _install(data: bytes, dst: Path, mode: int = 0o600) -> None:
    """Replace ``dst`` atomically, as a certificate manager does."""
    tmp = dst.with_name(dst.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, dst)


@pytest.fixture
def live(pki, tmp_path):
    """The files the server is configured with, in a directory of their own."""
    directory = tmp_path / "live"
    directory.mkdir()
    files = {"cert": directory / "server.crt", "key": directory / "server.key",
             "ca": directory / "clients-ca.crt"}
    _install(pki.server.cert.read_bytes(), files["cert"], 0o644)
    _install(pki.server.key.read_bytes(), files["key"])
    _install(pki.ca.pem, files["ca"], 0o644)
    return files


def _serve(tls: ServerTls):
    def who(request, context):
        identity = identify(context, None)
        return b"none" if identity is None else identity.name.encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Tls", {"Who": grpc.unary_unary_rpc_method_handler(who)}),))
    port = server.add_secure_port("127.0.0.1:0", tls.credentials())
    server.start()
    return server, port


@pytest.fixture
def server(live):
    tls = ServerTls(live["cert"], live["key"], live["ca"])
    srv, port = _serve(tls)
    yield tls, port
    srv.stop(None)


def _channel(port: int, pki, client: CertFiles | None) -> grpc.Channel:
    key, chain = (None, None) if client is None else (client.key.read_bytes(), client.cert.read_bytes())
    creds = grpc.ssl_channel_credentials(pki.ca.pem, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=_CLIENT_OPTIONS)


def _who(port: int, pki, client: CertFiles | None) -> str:
    with _channel(port, pki, client) as channel:
        return channel.unary_unary("/test.Tls/Who")(b"", timeout=5).decode()


def _refused(port: int, pki, client: CertFiles | None) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _who(port, pki, client)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def _handshake(port: int, client: CertFiles, ca: Path,
               version: ssl.TLSVersion | None = None) -> tuple[str, int]:
    """A Python ``ssl`` handshake: (negotiated version, served certificate's serial)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(client.cert, client.key)
    ctx.set_alpn_protocols(["h2"])
    if version is not None:
        _pin(ctx, version)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            assert tls.selected_alpn_protocol() == "h2"
            return tls.version(), served.serial_number


def _pin(ctx: ssl.SSLContext, version: ssl.TLSVersion) -> None:
    """Only ``version``; SECLEVEL=0 so that OpenSSL agrees to offer TLS 1.0/1.1."""
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 and TLSv1_1 are
        ctx.minimum_version = ctx.maximum_version = version


def _python_server_speaks(pki, version: ssl.TLSVersion) -> bool:
    """Control: can this machine's OpenSSL make a ``version`` handshake at all?
    (A Python ``ssl`` server pinned to it, our client pinned to it.)"""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server.cert, pki.server.key)
    ctx.set_alpn_protocols(["h2"])
    _pin(ctx, version)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        return _handshake(listener.getsockname()[1], pki.viewer, pki.ca.cert_file,
                          version)[0] is not None
    except (ssl.SSLError, OSError):
        return False
    finally:
        thread.join(5)
        listener.close()


# -- identities ------------------------------------------------------------
@pytest.mark.parametrize("who, expected", [
    ("operator", "cert:spiffe://test/operator"),  # URI SAN beats DNS SAN and CN
    ("admin", "cert:admin.test"),                 # DNS SAN only
    ("viewer", "cert:viewer"),                    # CN only
])
def test_client_identity(server, pki, who, expected):
    _, port = server
    assert _who(port, pki, getattr(pki, who)) == expected


@pytest.mark.parametrize("client", ["untrusted_client", "expired_client", None])
def test_bad_or_missing_client_certificate_is_refused(server, pki, client):
    _, port = server
    _refused(port, pki, None if client is None else getattr(pki, client))


def test_identity_from_auth_context_without_pem():
    """gRPC's own SAN split is the fallback when no PEM is in the context."""
    ctx = {"transport_security_type": [b"ssl"], "x509_common_name": [b"cn"],
           "peer_dns": [b"dns.example"], "peer_uri": [b"spiffe://r/cp"]}
    assert identity_from_cert(ctx) == "spiffe://r/cp"
    del ctx["peer_uri"]
    assert identity_from_cert(ctx) == "dns.example"
    del ctx["peer_dns"]
    assert identity_from_cert(ctx) == "cn"
    assert identity_from_cert({"transport_security_type": [b"insecure"]}) is None
    assert name_from_pem(b"not a certificate") is None


def test_identify_plaintext_without_proxy_is_nobody():
    class Ctx:
        def peer(self):
            return "ipv4:127.0.0.1:4000"

        def auth_context(self):
            return {"transport_security_type": [b"insecure"]}

    class Proxy:
        def lookup(self, peer):
            return type("P", (), {"uid": 7, "pid": 9})() if peer.endswith(":4000") else None

    assert identify(Ctx(), None) is None
    assert identify(Ctx(), Proxy()) == Identity("unix:uid:7", "uid", "unix uid=7 pid=9")


# -- protocol versions -----------------------------------------------------
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(server, pki, version):
    if not _python_server_speaks(pki, version):
        pytest.skip(f"this OpenSSL cannot make a {version.name} handshake at all")
    _, port = server
    # The same client that just spoke TLS 1.0/1.1 to a willing server: gRPC
    # hangs up on its ClientHello (an EOF, or a protocol_version alert).
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _handshake(port, pki.viewer, pki.ca.cert_file, version)


@pytest.mark.parametrize("version, name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                           (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_12_and_13_are_accepted(server, pki, version, name):
    _, port = server
    assert _handshake(port, pki.viewer, pki.ca.cert_file, version) == (name, pki.server.serial)


# -- reloading from disk ---------------------------------------------------
def test_rotation_applies_to_new_connections(server, pki, live, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="agent.security.tls")
    tls, port = server
    old = _channel(port, pki, pki.operator)
    assert old.unary_unary("/test.Tls/Who")(b"", timeout=5) == b"cert:spiffe://test/operator"

    new_ca = Authority(tmp_path / "pki", "client-ca-2")
    new_client = new_ca.issue("ops2", "ops2")
    new_server = pki.ca.issue_server("server2")
    _install(new_server.cert.read_bytes(), live["cert"], 0o644)
    _install(new_server.key.read_bytes(), live["key"])
    _install(new_ca.pem, live["ca"], 0o644)

    assert _handshake(port, new_client, pki.ca.cert_file)[1] == new_server.serial
    assert _who(port, pki, new_client) == "cert:ops2"
    _refused(port, pki, pki.operator)  # its CA is no longer trusted
    assert tls.serial == new_server.serial and tls.reloads == 1
    # The connection made before the rotation lives on.
    assert old.unary_unary("/test.Tls/Who")(b"", timeout=5) == b"cert:spiffe://test/operator"
    old.close()
    assert [r.getMessage() for r in caplog.records] == ["tls.reloaded"]


def test_rotation_reaches_every_port(pki, live):
    """One ServerTls, two ports: each port's gRPC gets the new configuration."""
    tls = ServerTls(live["cert"], live["key"], live["ca"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ports = [server.add_secure_port("127.0.0.1:0", tls.credentials()) for _ in range(2)]
    server.start()
    try:
        assert [_handshake(p, pki.viewer, pki.ca.cert_file)[1] for p in ports] == [pki.server.serial] * 2
        new_server = pki.ca.issue_server("server2")
        _install(new_server.cert.read_bytes(), live["cert"], 0o644)
        _install(new_server.key.read_bytes(), live["key"])
        for _ in range(2):
            assert [_handshake(p, pki.viewer, pki.ca.cert_file)[1] for p in ports] == [new_server.serial] * 2
        assert tls.reloads == 1
    finally:
        server.stop(None)


@pytest.mark.parametrize("breakage", ["garbage_ca", "missing_cert", "wrong_key", "open_key"])
def test_broken_files_at_reload_keep_the_last_good_config(server, pki, live, tmp_path,
                                                          caplog, breakage):
    caplog.set_level(logging.INFO, logger="agent.security.tls")
    tls, port = server
    if breakage == "garbage_ca":
        _install(b"-----BEGIN CERTIFICATE-----\nnope\n", live["ca"], 0o644)
    elif breakage == "missing_cert":
        live["cert"].unlink()
    elif breakage == "wrong_key":
        _install(pki.viewer.key.read_bytes(), live["key"])
    else:  # the same key, reinstalled world-readable
        _install(live["key"].read_bytes(), live["key"], 0o644)
    for _ in range(3):  # three new connections, one warning
        assert _who(port, pki, pki.admin) == "cert:admin.test"
        assert _handshake(port, pki.viewer, pki.ca.cert_file)[1] == pki.server.serial
    failed = [r for r in caplog.records if r.getMessage() == "tls.reload_failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert tls.reload_failures == 1 and tls.reloads == 0

    # Repaired: the next connection loads it.
    new_server = pki.ca.issue_server("server3")
    _install(pki.ca.pem, live["ca"], 0o644)
    _install(new_server.cert.read_bytes(), live["cert"], 0o644)
    _install(new_server.key.read_bytes(), live["key"])
    assert _handshake(port, pki.viewer, pki.ca.cert_file)[1] == new_server.serial
    assert tls.reloads == 1


# -- construction ----------------------------------------------------------
def test_key_readable_by_others_is_refused(live):
    os.chmod(live["key"], 0o644)
    with pytest.raises(TlsError, match=r"server\.key: private key is readable by group or others \(mode 0644\)"):
        ServerTls(live["cert"], live["key"], live["ca"])


def test_missing_or_bad_files_are_named(live, pki, tmp_path):
    missing = tmp_path / "nope.crt"
    with pytest.raises(TlsError, match="nope.crt: no such file") as info:
        ServerTls(live["cert"], live["key"], missing)
    assert info.value.path == str(missing)
    live["ca"].write_text("hello\n")
    with pytest.raises(TlsError, match="clients-ca.crt: no PEM certificate"):
        ServerTls(live["cert"], live["key"], live["ca"])
    _install(pki.admin.key.read_bytes(), live["key"])
    with pytest.raises(TlsError, match="does not match the certificate"):
        ServerTls(live["cert"], live["key"], pki.ca.cert_file)
    with pytest.raises(TlsError, match="is a directory"):
        ServerTls(tmp_path, live["key"], pki.ca.cert_file)


@pytest.mark.parametrize("host, expected", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.com", False),
    ("", False), ("localhost.example", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected
