"""The unix socket, relayed to an internal gRPC listener, with the caller's uid.

gRPC Python does not expose SO_PEERCRED, so the agent accepts unix-socket
connections itself: :class:`PeerCredProxy` reads each caller's credentials,
opens a TCP connection to the internal listener (``127.0.0.1:<port>``) and
copies bytes both ways.  It remembers ``local address of that TCP connection
-> Peer`` while the connection lives; the RPC handler maps its
``context.peer()`` back with :meth:`PeerCredProxy.lookup`.  A process that
connects to the internal port directly is in no map and has no identity.

The upstream socket is bound explicitly (``bind((host, 0))``) before it
connects: Linux never lends an explicitly bound port to another socket's
implicit ``connect()`` port choice, so no other local connection can appear
to gRPC with the same peer address as a relayed one.

One thread runs everything with ``selectors``: non-blocking sockets, at most
``BUFFER_BYTES`` buffered per direction, and a side is not read while the
buffer towards the other is full (back-pressure reaches the sender through
TCP/unix flow control).  When either side closes, what it sent is
delivered to the other and then both are closed; any error closes both.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import selectors
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

from agent.logs import get_logger

log = get_logger(__name__)

# socket(7): struct ucred { pid_t pid; uid_t uid; gid_t gid; };
UCRED = struct.Struct("iII")
BUFFER_BYTES = 256 * 1024  # per direction, per connection
CHUNK = 64 * 1024
ACCEPT_PAUSE_S = 1.0
_R, _W = selectors.EVENT_READ, selectors.EVENT_WRITE
_LISTENER, _WAKE = object(), object()


@dataclass(frozen=True)
class Peer:
    uid: int
    gid: int
    pid: int


def peer_credentials(sock: socket.socket) -> Peer:
    """SO_PEERCRED: the credentials the peer had when it called connect()."""
    pid, uid, gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    return Peer(uid=uid, gid=gid, pid=pid)


def parse_grpc_peer(peer: str) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000`` or ``ipv6:%5B::1%5D:5000``
    -> ``("127.0.0.1", 5000)`` / ``("::1", 5000)``; None for anything else."""
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return None
    host, _, port = unquote(rest).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


class SocketInUse(OSError):
    """Something answers on the socket path: another agent, most likely.
    ``holder`` says who, as far as this process can see."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(errno.EADDRINUSE, f"another process is serving this socket ({holder})",
                         path)
        self.holder = holder


def _describe(pid: int) -> str:
    """``pid 1234 (hostagent)``: the process name only, never its command
    line, which may carry a secret and lands in the log.  Only the pid where
    /proc hides the process (ProtectProc=invisible, another pid namespace)."""
    if pid <= 0:
        return "a process in another pid namespace"
    try:
        with open(f"/proc/{pid}/comm") as f:
            name = f.read(64).strip()
    except OSError:
        name = ""
    return f"pid {pid} ({name})" if name else f"pid {pid}"


def _holder(path: str) -> str | None:
    """Who listens on the unix socket at ``path``; None when nobody does (a
    socket left by a process that died: connect() is refused).  Any other
    outcome counts as alive, because unlinking a live agent's socket cuts
    every local operator off it without a trace."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except OSError as exc:  # EACCES, a full backlog (timeout): someone is there
        return f"cannot tell who: connect failed with {exc.strerror or exc}"
    else:
        # On the connecting side SO_PEERCRED is the listener's (from listen()).
        return _describe(peer_credentials(probe).pid)
    finally:
        probe.close()


class _Pipe:
    """One relayed connection: ``up`` carries client -> upstream bytes."""

    __slots__ = ("client", "upstream", "peer", "key", "up", "down", "ended", "connecting",
                 "masks", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket, peer: Peer, key) -> None:
        self.client, self.upstream, self.peer, self.key = client, upstream, peer, key
        self.up, self.down = bytearray(), bytearray()
        self.ended = False  # EOF read from one side: deliver what it sent, then close
        self.connecting = True
        self.masks = {client: 0, upstream: 0}
        self.closed = False


class PeerCredProxy:
    def __init__(self, socket_path: str, upstream: tuple[str, int], mode: int = 0o660,
                 max_connections: int = 256) -> None:
        self.socket_path = os.fspath(socket_path)
        host = str(ipaddress.ip_address(upstream[0]))  # an address, never a name to resolve
        self.upstream = (host, int(upstream[1]))
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.mode = mode
        self.max_connections = max_connections
        self.refused = 0  # connections closed at once because the limit was reached
        self._peers: dict[tuple[str, int], Peer] = {}
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._closing = False
        self._saturated = False
        self._resume_at: float | None = None  # accept() paused until then
        self._thread: threading.Thread | None = None

    # -- public ----------------------------------------------------------
    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._peers)

    def lookup(self, grpc_peer: str) -> Peer | None:
        """The unix caller behind a gRPC ``context.peer()``; None if not relayed."""
        key = parse_grpc_peer(grpc_peer)
        if key is None:
            return None
        with self._lock:
            return self._peers.get(key)

    def start(self) -> None:
        """Listen on the socket (directory created, stale socket removed, ``mode``
        applied before the first connection can arrive) and start relaying.
        Raises :class:`SocketInUse` when a live process listens on the path."""
        path = self.socket_path
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        if os.path.lexists(path):  # a stale socket; never anything else
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise OSError(errno.EEXIST, "exists and is not a socket", path)
            holder = _holder(path)
            if holder is not None:
                raise SocketInUse(path, holder)
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            os.chmod(path, self.mode)  # before listen(): until then connect() is refused
            self._inode = os.lstat(path).st_ino
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._wake_r.setblocking(False)
        self._sel.register(listener, _R, _LISTENER)
        self._sel.register(self._wake_r, _R, _WAKE)
        self._thread = threading.Thread(target=self._run, name="peercred-proxy", daemon=True)
        self._thread.start()
        log.info("proxy.listening", socket=path, upstream=f"{self.upstream[0]}:{self.upstream[1]}",
                 mode=f"{self.mode:04o}")

    def close(self) -> None:
        """Close every connection and the listener; remove the socket file."""
        if self._closing:
            return
        self._closing = True
        if self._thread is None:
            self._teardown()
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # the loop already ended (and tore down)
        self._thread.join()

    # -- the loop --------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closing:
                timeout = None if self._resume_at is None else max(0.0, self._resume_at - time.monotonic())
                if timeout == 0.0:
                    self._sel.register(self._listener, _R, _LISTENER)
                    self._resume_at = timeout = None
                for key, events in self._sel.select(timeout):
                    if key.data is _LISTENER:
                        self._accept()
                    elif key.data is _WAKE:
                        self._wake_r.recv(64)
                    else:
                        self._service(*key.data, events)
        except Exception:  # noqa: BLE001 - a bug here must not go unseen
            log.exception("proxy.failed", socket=self.socket_path)
        finally:
            self._teardown()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: pause, do not spin
                log.warning("proxy.accept_failed", error=str(exc), retry_in_s=ACCEPT_PAUSE_S)
                self._sel.unregister(self._listener)
                self._resume_at = time.monotonic() + ACCEPT_PAUSE_S
                return
            if len(self._pipes) >= self.max_connections:
                self.refused += 1
                conn.close()
                if not self._saturated:  # once per episode, not once per connection
                    self._saturated = True
                    log.warning("proxy.connection_limit", limit=self.max_connections,
                                refused_total=self.refused)
                continue
            try:
                self._open(conn)
            except OSError as exc:
                conn.close()
                log.warning("proxy.connection_failed", error=str(exc))

    def _open(self, conn: socket.socket) -> None:
        peer = peer_credentials(conn)
        conn.setblocking(False)
        up = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up.bind((self.upstream[0], 0))
            host, port = up.getsockname()[:2]
            err = up.connect_ex(self.upstream)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        except BaseException:
            up.close()
            raise
        pipe = _Pipe(conn, up, peer, (str(ipaddress.ip_address(host)), port))
        with self._lock:
            self._peers[pipe.key] = peer
        self._pipes.add(pipe)
        log.debug("proxy.accepted", uid=peer.uid, pid=peer.pid, local_port=port)
        self._update(pipe)

    def _service(self, pipe: _Pipe, sock: socket.socket, events: int) -> None:
        if pipe.closed:
            return
        try:
            if sock is pipe.upstream and pipe.connecting and events & _W:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                pipe.connecting = False
            if events & _R:
                self._read(pipe, sock)
            if events & _W and not pipe.connecting:
                self._flush(pipe, sock)
        except OSError as exc:
            self._drop(pipe, str(exc))
            return
        if pipe.ended and not (pipe.up or pipe.down):
            self._drop(pipe, None)
        else:
            self._update(pipe)

    def _read(self, pipe: _Pipe, sock: socket.socket) -> None:
        buf = pipe.up if sock is pipe.client else pipe.down
        try:
            data = sock.recv(min(CHUNK, BUFFER_BYTES - len(buf)))
        except (BlockingIOError, InterruptedError):
            return
        if data:
            buf += data
        else:  # the peer is gone: what it sent still goes through, the rest is moot
            pipe.ended = True
            (pipe.down if sock is pipe.client else pipe.up).clear()
            self._flush(pipe, pipe.upstream if sock is pipe.client else pipe.client)

    def _flush(self, pipe: _Pipe, sock: socket.socket) -> None:
        """Write what is buffered towards ``sock``."""
        if sock is pipe.upstream and pipe.connecting:
            return
        buf = pipe.up if sock is pipe.upstream else pipe.down
        if buf:
            try:
                del buf[:sock.send(buf)]
            except (BlockingIOError, InterruptedError):
                pass

    def _update(self, pipe: _Pipe) -> None:
        """Re-arm both sockets: read while there is room, write while there is data."""
        reading = not pipe.ended
        c_mask = (_R if reading and len(pipe.up) < BUFFER_BYTES else 0) | (_W if pipe.down else 0)
        if pipe.connecting:
            u_mask = _W
        else:
            u_mask = (_R if reading and len(pipe.down) < BUFFER_BYTES else 0) | (_W if pipe.up else 0)
        for sock, mask in ((pipe.client, c_mask), (pipe.upstream, u_mask)):
            old = pipe.masks[sock]
            if mask == old:
                continue
            if not mask:
                self._sel.unregister(sock)
            elif not old:
                self._sel.register(sock, mask, (pipe, sock))
            else:
                self._sel.modify(sock, mask, (pipe, sock))
            pipe.masks[sock] = mask

    def _drop(self, pipe: _Pipe, error: str | None) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        with self._lock:  # forget the mapping before the port can be reused
            self._peers.pop(pipe.key, None)
        self._pipes.discard(pipe)
        self._saturated = False
        for sock in (pipe.client, pipe.upstream):
            if pipe.masks[sock]:
                self._sel.unregister(sock)
            sock.close()
        if error:
            log.debug("proxy.connection_error", uid=pipe.peer.uid, pid=pipe.peer.pid, error=error)

    def _teardown(self) -> None:
        for pipe in list(self._pipes):
            self._drop(pipe, None)
        if self._listener is not None:
            if self._resume_at is None:
                self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            try:  # only our own socket: a newer agent may have replaced it
                if os.lstat(self.socket_path).st_ino == self._inode:
                    os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
