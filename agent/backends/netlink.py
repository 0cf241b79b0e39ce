"""Raw ``RTM_GETSTATS`` dumps: every counter of every interface of one
network namespace in one request, as the bytes the kernel sent.

The hot path of interface telemetry: one raw ``NETLINK_ROUTE`` socket per
namespace, no decoding here (``agent.core.parse_stats_dump`` turns the bytes
into arrays).  pyroute2 is only used to enter a named namespace: its generic
message decoder takes seconds for a dump of thousands of interfaces.
"""
from __future__ import annotations

import errno
import select
import socket
from array import array

from agent.backends.netns import call_in_netns

from agent.core import netlink_py as wire
from agent.core import last_message_type, parse_stats_dump

_RCVBUF = 4 << 20
# The kernel sizes dump datagrams after the largest recv() buffer it has seen,
# capped at SKB_WITH_OVERHEAD(32 KiB); a recv() always offers at least this.
_RECV_ROOM = 64 << 10
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_RCVBUF = socket.SO_RCVBUF
_HDR = wire.NLMSGHDR.size
_MALFORMED = -1
_FINAL = (wire.NLMSG_DONE, wire.NLMSG_ERROR, _MALFORMED)


def _open(netns: str | None) -> socket.socket:
    """A netlink route socket of ``netns`` (a name under /var/run/netns or a
    path), or of this thread's namespace when None."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
    return call_in_netns(netns, lambda: _open(None))


class StatsDumper:
    """``RTM_GETSTATS`` dumps (``IFLA_STATS_LINK_64`` of every interface) of
    one network namespace: ``netns`` is a name under /var/run/netns (or a
    path to a namespace file); None is the agent's own.

    Not thread-safe: one dump at a time per dumper.  ``timeout`` bounds each
    ``recv`` (``TimeoutError``).  What an abandoned dump left on the socket
    (an exception part way, another user of the descriptor) is read away
    before the next request: the kernel refuses a dump while one runs
    (``EBUSY``), and stray replies would be taken for the new one's; any that
    still arrive are told apart by their sequence number and dropped.
    """

    def __init__(self, netns: str | None = None, *, rcvbuf: int = _RCVBUF,
                 timeout: float | None = 5.0) -> None:
        self.netns = netns
        self._sock = _open(netns)
        try:
            self._sock.settimeout(timeout)
            self.rcvbuf = self._set_rcvbuf(rcvbuf)
            self._sock.bind((0, 0))  # the kernel picks the port id
            self.port_id = self._sock.getsockname()[0]
        except BaseException:
            self._sock.close()
            raise
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._seq = 0
        self._buf = bytearray(4 * _RECV_ROOM)  # grows to the largest dump seen
        self.datagrams = 0  # in the last dump

    def _set_rcvbuf(self, size: int) -> int:
        """SO_RCVBUFFORCE (root may pass rmem_max), else SO_RCVBUF; return
        what the kernel granted (it doubles the request for bookkeeping)."""
        for opt in (_SO_RCVBUFFORCE, _SO_RCVBUF):
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, opt, size)
                break
            except PermissionError:
                continue
        return self._sock.getsockopt(socket.SOL_SOCKET, _SO_RCVBUF)

    def dump(self) -> bytes:
        """One whole dump: the datagrams of the reply, concatenated, ending
        with ``NLMSG_DONE`` (or the ``NLMSG_ERROR`` that answered instead)."""
        self._drain()
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        self._sock.send(wire.pack_getstats_request(seq, pid=self.port_id))
        buf = self._buf
        used = datagrams = 0
        while True:
            if len(buf) - used < _RECV_ROOM:
                buf.extend(bytes(len(buf)))  # double
            view = memoryview(buf)
            try:
                n = self._sock.recv_into(view[used:], len(buf) - used, socket.MSG_TRUNC)
            finally:
                view.release()  # else the bytearray could not be resized
            if n > len(buf) - used:
                raise wire.NetlinkError(errno.EMSGSIZE, f"netlink datagram of {n} bytes "
                                                        f"truncated to {len(buf) - used}")
            last_type = _last_type(buf, used, used + n, seq)
            if last_type is None:  # empty, or a reply to an earlier dump: drop it
                continue
            used += n
            datagrams += 1
            if last_type in _FINAL:
                break
        self.datagrams = datagrams
        return bytes(memoryview(buf)[:used])

    def _drain(self) -> None:
        """Read whatever is queued (one poll() when nothing is).  Reading a
        running dump's datagram makes the kernel queue its next one at once,
        so this ends with that dump."""
        while self._poll.poll(0):
            try:
                self._sock.recv_into(self._buf, len(self._buf))
            except BlockingIOError:
                break
            except OSError as exc:  # ENOBUFS: the queue overflowed; it is empty now
                if exc.errno != errno.ENOBUFS:
                    raise

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def __enter__(self) -> StatsDumper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _last_type(buf: bytearray, start: int, end: int, seq: int) -> int | None:
    """Type of the last message of the datagram ``buf[start:end]``; None
    when it is empty or its first message is not of sequence ``seq`` (it is
    dropped); ``_MALFORMED`` when its lengths do not add up (that ends the
    dump, and the parser reports it)."""
    if start == end or (end - start >= _HDR and wire.NLMSGHDR.unpack_from(buf, start)[3] != seq):
        return None
    return last_message_type(buf, start, end)  # -1 is _MALFORMED


def stats(netns: str | None = None) -> tuple[array, array]:
    """``(ifindex, counters)`` of every interface of ``netns`` now: one dump
    parsed by the selected implementation (``agent.core.parse_stats_dump``)."""
    with StatsDumper(netns) as dumper:
        return parse_stats_dump(dumper.dump())
