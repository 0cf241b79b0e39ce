"""sFlow v5 datagrams to the configured collectors, over UDP.

Keeps the sequence numbers sFlow asks for (one per datagram stream, one per
source for flow samples, one per source for counter samples) and the uptime
clock.  Sending never blocks: the sockets are non-blocking, and a datagram
the kernel refuses (a full socket buffer, no route) is counted in
``send_errors`` and dropped, as a sampled packet is never worth stalling the
sampler for.  Runs on the sampler's thread only.
"""
from __future__ import annotations

import socket
import time
from typing import Callable, Iterable, Sequence

from agent.backends.linkinfo import Link
from agent.flows import sflow
from agent.flows.config import CollectorAddress
from agent.logs import get_logger

log = get_logger(__name__)

Header = tuple[int, int, bytes]  # (direction, wire length, captured bytes)


def guess_agent_address(collectors: Sequence[CollectorAddress]) -> str:
    """The source address this host would use towards the first collector
    (a connected UDP socket sends nothing)."""
    for c in collectors:
        family = socket.AF_INET6 if ":" in c.address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((c.address, c.port))
                return s.getsockname()[0]
        except OSError:
            continue
    return "0.0.0.0"


class SflowExporter:
    def __init__(self, collectors: Sequence[CollectorAddress], agent_address: str = "",
                 sub_agent_id: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.collectors = tuple(collectors)
        self.agent_address = agent_address or guess_agent_address(self.collectors)
        self._agent = sflow.encode_address(self.agent_address)
        self._sub_agent_id = sub_agent_id
        self._clock, self._t0 = clock, clock()
        self._seq = 0
        self._flow_seq: dict[int, int] = {}
        self._counter_seq: dict[int, int] = {}
        self._socks: dict[int, socket.socket] = {}
        self.datagrams = self.samples = self.send_errors = 0

    def _sock(self, family: int) -> socket.socket:
        sock = self._socks.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            self._socks[family] = sock
        return sock

    def flow_samples(self, ifindex: int, rate: int, pool: int, drops: int, headers: Iterable[Header],
                     vni_of: Callable[[bytes], int] = lambda h: 0) -> None:
        """One flow_sample per captured header; ``pool``: the sample pool
        after these samples."""
        samples = []
        for direction, frame_len, header in headers:
            seq = self._flow_seq.get(ifindex, 0) + 1
            self._flow_seq[ifindex] = seq
            samples.append(sflow.flow_sample(seq, ifindex, direction, rate, pool, drops, frame_len,
                                             header, vni_of(header)))
        self._send(samples)

    def counter_samples(self, counters: Iterable[sflow.IfCounters]) -> None:
        samples = []
        for c in counters:
            seq = self._counter_seq.get(c.ifindex, 0) + 1
            self._counter_seq[c.ifindex] = seq
            samples.append(sflow.counters_sample(seq, c))
        self._send(samples)

    def forget(self, ifindex: int) -> None:
        """The source is gone: a new one with this ifindex starts at 1 again."""
        self._flow_seq.pop(ifindex, None)
        self._counter_seq.pop(ifindex, None)

    def _send(self, samples: list[bytes]) -> None:
        if not samples or not self.collectors:
            return
        uptime = int((self._clock() - self._t0) * 1000)
        for group in sflow.pack_samples(self._agent, samples):
            self._seq += 1
            data = sflow.datagram(self._agent, self._sub_agent_id, self._seq, uptime, group)
            self.datagrams += 1
            self.samples += len(group)
            for c in self.collectors:
                family = socket.AF_INET6 if ":" in c.address else socket.AF_INET
                try:
                    self._sock(family).sendto(data, (c.address, c.port))
                except OSError:
                    self.send_errors += 1

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()


def if_counters(ifindex: int, row: Sequence[int], fields: Sequence[str], link: Link | None) -> sflow.IfCounters:
    """One interface's ``RTM_GETSTATS`` row (``fields`` names the columns)
    as sFlow generic interface counters.  The kernel does not split unicast
    from broadcast; unicast is packets less multicast, broadcast 0 (hsflowd
    does the same on Linux)."""
    v = dict(zip(fields, row))
    speed = (link.speed_mbps or 0) * 1_000_000 if link is not None else 0
    duplex = None if link is None or link.duplex is None else link.duplex == "full"
    multicast = v.get("multicast", 0)
    return sflow.IfCounters(
        ifindex=ifindex, speed_bps=speed, full_duplex=duplex,
        admin_up=bool(link and link.admin_up), oper_up=bool(link and link.operstate in ("up", "unknown")
                                                            and link.carrier),
        in_octets=v.get("rx_bytes", 0), in_ucast=max(0, v.get("rx_packets", 0) - multicast),
        in_multicast=multicast, in_discards=v.get("rx_dropped", 0), in_errors=v.get("rx_errors", 0),
        in_unknown_protos=v.get("rx_nohandler", 0),
        out_octets=v.get("tx_bytes", 0), out_ucast=v.get("tx_packets", 0),
        out_discards=v.get("tx_dropped", 0), out_errors=v.get("tx_errors", 0))
