"""One interface's packet sampler: an ``AF_PACKET`` socket with a
``TPACKET_V3`` memory-mapped receive ring and a classic BPF program that
keeps 1 packet in N in the kernel.

The filter is hsflowd's technique: ``ld rand; mod #N; jneq #0, drop; ret
#snaplen``.  ``SKF_AD_RANDOM`` is the kernel's per-packet pseudo-random
number, so user space only ever sees the sampled packets, and the filter's
return value is the snap length (the header bytes kept).  The socket is made
with protocol 0 (it receives nothing), given its filter and ring, and only
then bound to ``(ifindex, ETH_P_ALL)``: no unsampled packet ever reaches the
ring.  Bound to one interface, it sees both directions; the packet type in
``sockaddr_ll`` says which (``PACKET_OUTGOING`` = sent).

The kernel fills whole blocks and hands each to user space
(``TP_STATUS_USER``) when it is full or ``retire_ms`` after its first packet.
:meth:`PacketRing.blocks` yields the ready ones as memoryviews of the ring
and gives each back (``TP_STATUS_KERNEL``) once the caller is done with it.
A full ring drops packets in the kernel; ``PACKET_STATISTICS`` counts them
(and resets on each read, so :meth:`stats` accumulates).

Nothing here decodes a packet: the flow kernel walks the blocks
(``agent.core`` ``FlowTable.add_block``).
"""
from __future__ import annotations

import ctypes
import mmap
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

from agent.backends.netns import call_in_netns

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
SKF_AD_RANDOM = 56
_SKF_AD_OFF = 0xFFFFF000  # -0x1000 as u32

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_ALU_MOD_K = 0x94
_JMP_JEQ_K = 0x15
_RET_K = 0x06

_BLOCK_STATUS = struct.Struct("=I")  # tpacket_block_desc.hdr.bh1.block_status, offset 8
_STATUS_OFFSET = 8
_STATS_V3 = struct.Struct("=III")    # tp_packets, tp_drops, tp_freeze_q_cnt
_REQ3 = struct.Struct("=7I")         # struct tpacket_req3
FRAME_SIZE = 2048  # only checked by the kernel for V3; frames are packed in blocks

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_libc.setsockopt.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_MAP_FAILED = ctypes.c_void_p(-1).value
_SOCKADDR_LL = struct.Struct("=HHiHBB8s")  # struct sockaddr_ll, 20 bytes


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), what)


def packet_socket() -> socket.socket:
    """A packet socket that receives nothing yet (protocol 0): it belongs to
    the namespace of the thread that makes it."""
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)


def packet_sockets(n: int, netns: str | None = None) -> list[socket.socket]:
    """``n`` of them in ``netns``, in one visit."""
    make = lambda: [packet_socket() for _ in range(n)]  # noqa: E731
    return make() if netns is None else call_in_netns(netns, make)


def sampling_program(rate: int, snaplen: int) -> list[tuple[int, int, int, int]]:
    """The classic BPF program keeping 1 packet in ``rate`` with ``snaplen``
    bytes: (code, jt, jf, k) tuples, as ``struct sock_filter``."""
    if rate < 1 or snaplen < 1:
        raise ValueError("rate and snaplen must be at least 1")
    if rate == 1:
        return [(_RET_K, 0, 0, snaplen)]
    return [(_LD_W_ABS, 0, 0, _SKF_AD_OFF + SKF_AD_RANDOM),
            (_ALU_MOD_K, 0, 0, rate),
            (_JMP_JEQ_K, 0, 1, 0),    # A == 0: keep (1 in rate), else skip to drop
            (_RET_K, 0, 0, snaplen),
            (_RET_K, 0, 0, 0)]


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buf))  # struct sock_fprog, native
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)     # the kernel copies it


@dataclass(frozen=True)
class RingGeometry:
    """Ring size: ``block_nr`` blocks of ``block_size`` bytes.  A block is
    handed over full or ``retire_ms`` after its first packet."""

    block_size: int = 1 << 15
    block_nr: int = 4
    retire_ms: int = 100

    @classmethod
    def for_speed(cls, speed_mbps: int | None) -> "RingGeometry":
        # The ring is kernel memory held for the interface's life: 128 KiB
        # (~700 samples of 128 bytes) for a tap or a slow link, so 500 taps
        # cost 64 MiB; a 10G+ NIC, whose bursts are larger even at 1 in N,
        # gets 2 MiB.
        if speed_mbps and speed_mbps >= 10_000:
            return cls(1 << 18, 8, 100)
        return cls()


class PacketRing:
    """The sampled packets of one interface (``ifindex``, in ``netns`` or
    this process's namespace; ``ifname`` names it in messages).  Owns one
    socket and one mapping; :meth:`close` releases both.  Used by one thread
    (the sampler's)."""

    def __init__(self, ifname: str, ifindex: int, rate: int, snaplen: int,
                 netns: str | None = None, geometry: RingGeometry = RingGeometry(),
                 sock: socket.socket | None = None) -> None:
        """``sock``: a fresh :func:`packet_socket` made in the interface's
        namespace (the ring takes it over); else one is made here, in
        ``netns``.  Setting a ring up waits for an RCU grace period in the
        kernel (``synchronize_net``, ~10 ms), and so does closing it: open and
        close many from several threads at once (grace periods are shared)."""
        if ifindex <= 0:  # 0 would bind to every interface
            raise ValueError(f"{ifname}: ifindex must be positive, got {ifindex}")
        self.ifname, self.ifindex, self.rate, self.snaplen = ifname, ifindex, rate, snaplen
        self.geometry = geometry
        self.packets = 0   # what the kernel queued to the ring (sampled), including drops
        self.drops = 0     # ring full: sampled packets lost in the kernel
        self._next = 0
        self._addr: int | None = None
        self._size = 0
        self._view: memoryview | None = None
        if sock is None:
            sock = packet_socket() if netns is None else call_in_netns(netns, packet_socket)
        self._sock: socket.socket | None = sock
        try:
            g = geometry
            _attach(sock, sampling_program(rate, snaplen))
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frames = g.block_size // FRAME_SIZE * g.block_nr
            # Through ctypes, which lets go of the GIL: Python's setsockopt
            # keeps it, and this call waits for a grace period (~10 ms).
            req = _REQ3.pack(g.block_size, g.block_nr, FRAME_SIZE, frames, g.retire_ms, 0, 0)
            if _libc.setsockopt(sock.fileno(), SOL_PACKET, PACKET_RX_RING, req, len(req)) != 0:
                _raise_errno(f"PACKET_RX_RING on {ifname}")
            self._size = g.block_size * g.block_nr
            # libc's mmap, not Python's: mmap.mmap() keeps a dup() of the
            # descriptor, two per ring (Python 3.13's trackfd=False avoids it).
            addr = _libc.mmap(None, self._size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED,
                              sock.fileno(), 0)
            if addr in (None, _MAP_FAILED):
                _raise_errno(f"mmap of {ifname}'s ring")
            self._addr = addr
            self._view = memoryview((ctypes.c_char * self._size).from_address(addr)).cast("B")
            # By ifindex, not name: a tap renamed meanwhile is not confused
            # with another.  From here on, sampled packets arrive.
            sll = _SOCKADDR_LL.pack(socket.AF_PACKET, socket.htons(ETH_P_ALL), ifindex, 0, 0, 0, b"")
            if _libc.bind(sock.fileno(), sll, len(sll)) != 0:
                _raise_errno(f"bind to {ifname} (ifindex {ifindex})")
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def blocks(self) -> Iterator[memoryview]:
        """The blocks the kernel has handed over, in ring order.  Each is
        returned to the kernel when the consumer asks for the next one (or
        stops), so it must not be kept."""
        g, view = self.geometry, self._view
        if view is None:
            return
        for _ in range(g.block_nr):
            start = self._next * g.block_size
            if not _BLOCK_STATUS.unpack_from(view, start + _STATUS_OFFSET)[0] & TP_STATUS_USER:
                return
            block = view[start:start + g.block_size]
            try:
                yield block
            finally:
                block.release()
                _BLOCK_STATUS.pack_into(view, start + _STATUS_OFFSET, TP_STATUS_KERNEL)
                self._next = (self._next + 1) % g.block_nr

    def clear_error(self) -> int:
        """Read and clear the socket's pending error (ENETDOWN while the
        interface is down: poll() reports POLLERR until it is read)."""
        return self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if self._sock is not None else 0

    def stats(self) -> tuple[int, int]:
        """(packets, drops) since the ring opened: what the filter kept and
        what the full ring lost of them."""
        if self._sock is not None:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size)
            packets, drops, _ = _STATS_V3.unpack(raw)
            self.packets += packets
            self.drops += drops
        return self.packets, self.drops

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._addr is not None:
            _libc.munmap(ctypes.c_void_p(self._addr), self._size)
            self._addr = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "PacketRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fd_count() -> int:
    """Open file descriptors of this process (for leak checks)."""
    return len(os.listdir("/proc/self/fd"))
