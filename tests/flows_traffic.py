"""Traffic for the flow tests, made only inside the namespaces the tests
create: a veth pair between two namespaces, UDP and TCP senders, raw frames,
and an independent reference count of what crossed the link (a plain
``AF_PACKET`` socket without filter or ring, decoded here with ``struct``),
so the sampler's answer is checked against a second path, not itself."""
from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import Counter

from agent.backends.netns import call_in_netns
from tests.netns import ip

A_IP, B_IP = "10.77.0.1", "10.77.0.2"


def veth_pair(ns_a: str, ns_b: str, a: str = "va", b: str = "vb") -> int:
    """``a`` in ns_a (A_IP) <-> ``b`` in ns_b (B_IP), both up; ``a``'s ifindex."""
    ip("link", "add", a, "type", "veth", "peer", "name", b, ns=ns_a)
    ip("link", "set", b, "netns", ns_b, ns=ns_a)
    ip("addr", "add", f"{A_IP}/24", "dev", a, ns=ns_a)
    ip("addr", "add", f"{B_IP}/24", "dev", b, ns=ns_b)
    ip("link", "set", a, "up", ns=ns_a)
    ip("link", "set", b, "up", ns=ns_b)
    # Static neighbours: no ARP in the middle of the counted traffic.
    mac_a = json.loads(ip("-j", "link", "show", a, ns=ns_a))[0]["address"]
    mac_b = json.loads(ip("-j", "link", "show", b, ns=ns_b))[0]["address"]
    ip("neigh", "replace", B_IP, "lladdr", mac_b, "dev", a, "nud", "permanent", ns=ns_a)
    ip("neigh", "replace", A_IP, "lladdr", mac_a, "dev", b, "nud", "permanent", ns=ns_b)
    return call_in_netns(ns_a, lambda: socket.if_nametoindex(a))


def udp_sink(ns: str, addr: str, port: int) -> socket.socket:
    """A bound UDP socket (no ICMP port unreachable comes back); close it."""
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.bind((addr, port))
        return s
    return call_in_netns(ns, make)


def send_udp(ns: str, src: str, sport: int, dst: str, dport: int, size: int, count: int,
             pace_every: int = 0) -> None:
    """``count`` datagrams of ``size`` payload bytes; ``pace_every``: sleep
    a little every that many, so a receiver's buffer never overflows."""
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((src, sport))
            payload = b"\x5a" * size
            for i in range(count):
                s.sendto(payload, (dst, dport))
                if pace_every and i % pace_every == pace_every - 1:
                    time.sleep(0.001)
    call_in_netns(ns, send)


def tcp_exchange(ns_client: str, ns_server: str, client: str, cport: int, server: str, sport: int,
                 nbytes: int) -> None:
    """One TCP connection: the client sends ``nbytes``, the server reads all, both close."""
    listener = call_in_netns(ns_server, lambda: socket.create_server((server, sport)))
    got = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            n = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                n += len(data)
            got.append(n)
    t = threading.Thread(target=serve)
    t.start()

    def connect():
        with socket.create_connection((server, sport), source_address=(client, cport)) as s:
            s.sendall(b"\xa5" * nbytes)
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the server's FIN
    call_in_netns(ns_client, connect)
    t.join(10)
    listener.close()
    assert got == [nbytes]


def raw_sender(ns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket that sends whole frames out of ``ifname``."""
    def make():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.bind((ifname, 0))
        return s
    return call_in_netns(ns, make)


def frame_key(frame: bytes) -> tuple | None:
    """(src, dst, proto, sport, dport) of an untagged IPv4 TCP/UDP frame, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    if proto not in (6, 17) or len(frame) < 14 + ihl + 4:
        return None
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    return src, dst, proto, sport, dport


class ReferenceCount:
    """Every frame on ``ifname`` in ``ns`` counted per (direction, 5-tuple):
    packets and wire bytes, from a plain AF_PACKET socket."""

    def __init__(self, ns: str, ifname: str) -> None:
        def make():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
            s.bind((ifname, 0x0003))
            return s
        self._sock = call_in_netns(ns, make)
        self._sock.settimeout(0.2)
        self.packets: Counter = Counter()
        self.bytes: Counter = Counter()
        self.frames = 0  # every frame, decodable or not
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(256)
        while not self._stop:
            try:  # with MSG_TRUNC the kernel returns the frame's whole length
                n, addr = self._sock.recvfrom_into(buf, len(buf), socket.MSG_TRUNC)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.frames += 1
            key = frame_key(bytes(buf[:min(n, len(buf))]))
            if key is None:
                continue
            direction = 1 if addr[2] == socket.PACKET_OUTGOING else 0
            self.packets[(direction, *key)] += 1
            self.bytes[(direction, *key)] += n

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._sock.close()


@contextlib.contextmanager
def reference(ns: str, ifname: str):
    ref = ReferenceCount(ns, ifname)
    try:
        yield ref
    finally:
        ref.close()
