"""The unix-socket proxy: real gRPC server, real clients, real SO_PEERCRED."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import select
import socket
import stat
import struct
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest

from agent.security.identity import identify
from agent.security.peercred import PeerCredProxy, parse_grpc_peer

BIG = random.Random(7).randbytes(3 * 1024 * 1024)
_OPTIONS = [("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024)]


def _raw(method):
    return grpc.unary_unary_rpc_method_handler(method)  # bytes in, bytes out


@pytest.fixture
def sockdir():
    # Short, and traversable by another uid (pytest's tmp_path is 0700 under root).
    path = tempfile.mkdtemp(prefix="hapc-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


@pytest.fixture
def stack(sockdir):
    """Internal gRPC listener on 127.0.0.1:0 and the proxy in front of it."""
    holder = {}

    def uid(request, context):
        who = holder["proxy"].lookup(context.peer())
        return b"none" if who is None else str(who.uid).encode()

    def name(request, context):
        who = identify(context, holder["proxy"])
        return b"none" if who is None else f"{who.name} {who.kind} {who.peer}".encode()

    def peer(request, context):
        return context.peer().encode()

    def big(request, context):
        return hashlib.sha256(request).hexdigest().encode() + b"\n" + BIG

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=_OPTIONS[1:])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Peer", {"Uid": _raw(uid), "Name": _raw(name), "Peer": _raw(peer),
                      "Big": _raw(big)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    path = os.path.join(sockdir, "run", "grpc.sock")
    proxy = PeerCredProxy(path, ("127.0.0.1", port), mode=0o666)
    holder["proxy"] = proxy
    proxy.start()
    yield proxy, path, port
    proxy.close()
    server.stop(None)


def _call(target: str, method: str, request: bytes = b"") -> bytes:
    with grpc.insecure_channel(target, options=_OPTIONS) as channel:
        return channel.unary_unary(f"/test.Peer/{method}")(request, timeout=10)


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_unix_caller_gets_its_uid(stack):
    proxy, path, _ = stack
    assert _call(f"unix:{path}", "Uid") == str(os.getuid()).encode()
    name, kind, peer = _call(f"unix:{path}", "Name").decode().split(" ", 2)
    assert (name, kind) == (f"unix:uid:{os.getuid()}", "uid")
    assert peer == f"unix uid={os.getuid()} pid={os.getpid()}"


def test_socket_file_is_a_socket_with_the_mode(stack):
    _, path, _ = stack
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666


def test_direct_connection_to_the_internal_port_has_no_identity(stack):
    _, _, port = stack
    assert _call(f"127.0.0.1:{port}", "Uid") == b"none"
    assert _call(f"127.0.0.1:{port}", "Name") == b"none"


IP_LOCAL_PORT_RANGE = 51  # linux/in.h, Linux >= 6.3: restricts connect()'s port choice


def _connect_from_port(port: int, address) -> socket.socket:
    """connect() with the kernel's implicit port choice forced to ``port``."""
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_LOCAL_PORT_RANGE, struct.pack("I", port << 16 | port))
    except OSError:
        s.close()
        pytest.skip("IP_LOCAL_PORT_RANGE needs Linux 6.3")
    try:
        s.connect(address)
    except OSError:
        s.close()
        raise
    return s


def test_no_local_connection_can_take_a_relayed_peer_address(stack):
    """Linux shares an implicitly chosen source port between connections to
    different destinations, so a local process connecting to the internal
    port could otherwise show gRPC a relayed connection's peer address.  The
    proxy binds its port explicitly, and such a port is never shared."""
    proxy, path, port = stack
    other = socket.create_server(("127.0.0.1", 0))
    try:
        # Control: an implicitly chosen port IS shared with a second destination.
        with socket.create_connection(other.getsockname()) as plain:
            shared = plain.getsockname()[1]
            with _connect_from_port(shared, ("127.0.0.1", port)) as twin:
                assert twin.getsockname()[1] == shared
        with grpc.insecure_channel(f"unix:{path}", options=_OPTIONS) as channel:
            relayed = channel.unary_unary("/test.Peer/Peer")(b"", timeout=10).decode()
            key = parse_grpc_peer(relayed)
            assert proxy.lookup(relayed) is not None and key[0] == "127.0.0.1"
            with pytest.raises(OSError) as info:
                _connect_from_port(key[1], ("127.0.0.1", port)).close()
            assert info.value.errno == errno.EADDRNOTAVAIL
    finally:
        other.close()


def _relay(sock: socket.socket) -> int:
    """A TCP port whose one connection is piped to ``sock`` (an already
    connected socket), so a gRPC client can speak over it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        conn, _ = listener.accept()
        listener.close()
        threading.Thread(target=pump, args=(conn, sock), daemon=True).start()
        pump(sock, conn)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534")
def test_caller_with_another_uid(stack):
    """A forked child drops to uid 65534, connects to the unix socket and hands
    the connected socket back (SCM_RIGHTS); SO_PEERCRED holds the credentials
    of connect() time, so the calls made over it are uid 65534's."""
    _, path, _ = stack
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child: no gRPC here, only syscalls, then _exit
        code = 1
        try:
            parent.close()
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socket.send_fds(child, [b"fd"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    child.close()
    _, fds, _, _ = socket.recv_fds(parent, 16, 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and fds
    sock = socket.socket(fileno=fds[0])
    assert _call(f"127.0.0.1:{_relay(sock)}", "Uid") == b"65534"


def test_many_concurrent_clients(stack):
    proxy, path, _ = stack
    clients, calls = 20, 50
    channels = [grpc.insecure_channel(f"unix:{path}", options=_OPTIONS) for _ in range(clients)]
    barrier = threading.Barrier(clients)
    expected = str(os.getuid()).encode()

    def run(channel):
        stub = channel.unary_unary("/test.Peer/Uid")
        barrier.wait()
        return [stub(b"", timeout=10) for _ in range(calls)]

    try:
        with futures.ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(run, channels))
        assert all(r == [expected] * calls for r in results)
        assert proxy.active_connections == clients
    finally:
        for channel in channels:
            channel.close()
    assert _wait(lambda: proxy.active_connections == 0)


def test_large_messages_pass_intact(stack):
    _, path, _ = stack
    request = random.Random(11).randbytes(3 * 1024 * 1024)
    digest, _, body = _call(f"unix:{path}", "Big", request).partition(b"\n")
    assert digest.decode() == hashlib.sha256(request).hexdigest()
    assert body == BIG


def test_connection_limit(sockdir):
    upstream = socket.create_server(("127.0.0.1", 0))
    path = os.path.join(sockdir, "limit.sock")
    proxy = PeerCredProxy(path, upstream.getsockname(), max_connections=2)
    proxy.start()
    try:
        held = [socket.socket(socket.AF_UNIX) for _ in range(2)]
        for s in held:
            s.connect(path)
        assert _wait(lambda: proxy.active_connections == 2)
        extra = socket.socket(socket.AF_UNIX)
        extra.connect(path)
        extra.settimeout(5)
        assert extra.recv(1) == b""  # closed at once
        assert proxy.active_connections == 2 and proxy.refused == 1
        for s in held + [extra]:
            s.close()
        assert _wait(lambda: proxy.active_connections == 0)
    finally:
        proxy.close()
        upstream.close()


def test_upstream_down_closes_the_client(sockdir):
    unused = socket.create_server(("127.0.0.1", 0))
    address = unused.getsockname()
    unused.close()
    proxy = PeerCredProxy(os.path.join(sockdir, "down.sock"), address)
    proxy.start()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(proxy.socket_path)
        s.settimeout(5)
        try:  # the proxy may have closed it already
            s.sendall(b"hello")
            assert s.recv(1) == b""
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _wait(lambda: proxy.active_connections == 0)
    finally:
        proxy.close()


def test_close_removes_the_socket_and_a_stale_one_is_replaced(sockdir):
    path = os.path.join(sockdir, "new", "agent.sock")
    os.makedirs(os.path.dirname(path))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    upstream = socket.create_server(("127.0.0.1", 0))
    proxy = PeerCredProxy(path, upstream.getsockname())
    proxy.start()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    held = socket.socket(socket.AF_UNIX)
    held.connect(path)
    assert _wait(lambda: proxy.active_connections == 1)
    proxy.close()
    assert not os.path.exists(path)
    assert proxy.active_connections == 0
    held.settimeout(5)
    assert held.recv(1) == b""
    held.close()
    upstream.close()


def test_a_regular_file_in_the_way_is_not_removed(sockdir):
    path = os.path.join(sockdir, "important")
    with open(path, "w") as f:
        f.write("data")
    with pytest.raises(OSError, match="not a socket"):
        PeerCredProxy(path, ("127.0.0.1", 1)).start()
    assert open(path).read() == "data"


@pytest.mark.parametrize("peer, key", [
    ("ipv4:127.0.0.1:5555", ("127.0.0.1", 5555)),
    ("ipv6:[::1]:5555", ("::1", 5555)),
    ("ipv6:%5B::1%5D:5555", ("::1", 5555)),
    ("unix:/run/hostagent/grpc.sock", None),
    ("ipv4:127.0.0.1", None),
    ("", None),
])
def test_parse_grpc_peer(peer, key):
    assert parse_grpc_peer(peer) == key


def _echo_server() -> socket.socket:
    """A raw TCP upstream that echoes every connection, one thread each."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo(conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass  # the proxy closed it

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_client_that_does_not_read_stalls_nobody_else(sockdir):
    """Back-pressure: a client that only writes fills the buffers and then its
    own socket, while the one relay thread keeps serving another connection."""
    upstream = _echo_server()
    proxy = PeerCredProxy(os.path.join(sockdir, "echo.sock"), upstream.getsockname())
    proxy.start()
    try:
        stuck = socket.socket(socket.AF_UNIX)
        stuck.connect(proxy.socket_path)
        stuck.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # write until everything in between is full
            try:
                sent += stuck.send(b"x" * 65536)
            except BlockingIOError:
                if not select_writable(stuck, 0.3):
                    break
        assert 0 < sent < 64 * 1024 * 1024  # it stopped: flow control held it

        payload = random.Random(3).randbytes(8 * 1024 * 1024)
        with socket.socket(socket.AF_UNIX) as other:
            other.connect(proxy.socket_path)
            other.settimeout(10)
            writer = threading.Thread(target=other.sendall, args=(payload,))
            writer.start()
            got = bytearray()
            while len(got) < len(payload):
                got += other.recv(1 << 20)
            writer.join()
        assert bytes(got) == payload
        stuck.close()
        assert _wait(lambda: proxy.active_connections == 0)
    finally:
        proxy.close()
        upstream.close()


def select_writable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([], [sock], [], timeout)[1])


def test_accept_failure_pauses_instead_of_spinning(sockdir, caplog):
    """EMFILE leaves the listener readable; the proxy must not loop on it."""
    upstream = socket.create_server(("127.0.0.1", 0))
    proxy = PeerCredProxy(os.path.join(sockdir, "emfile.sock"), upstream.getsockname())

    class Flaky:  # the listening socket, whose first accept() fails
        def __init__(self, real):
            self.real, self.failures = real, 1

        def accept(self):
            if self.failures:
                self.failures -= 1
                raise OSError(errno.EMFILE, "Too many open files")
            return self.real.accept()

        def __getattr__(self, name):
            return getattr(self.real, name)

    caplog.set_level(logging.WARNING, logger="agent.security.peercred")
    proxy.start()
    proxy._listener = Flaky(proxy._listener)
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(proxy.socket_path)
            assert _wait(lambda: proxy.active_connections == 1)
        failed = [r for r in caplog.records if r.getMessage() == "proxy.accept_failed"]
        assert len(failed) == 1
    finally:
        proxy.close()
        upstream.close()
