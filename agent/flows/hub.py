"""What the sampler measured, kept for ListFlows/WatchFlows and the flows
collector, in bounded memory.

The sampler hands over its flow table every flush (about a second): flows
keyed by (interface, direction, VLAN, VNI, ethertype, src, dst, protocol,
ports) with packets and bytes already scaled by the sampling rate.  They are
summed into time buckets of ``step`` seconds; ``retention / step`` buckets
are kept, each with at most ``max_flows`` keys (a key beyond that is counted
in ``overflow`` and left out), so memory is bounded by ``buckets x
max_flows`` entries whatever the traffic.  A query sums the buckets the
window covers, filters and returns the top N.

Interfaces are named, not numbered, from the moment the flows arrive: an
ifindex is reused after a tap is deleted, its name at the time is what the
operator saw.  Per-interface and per-VM totals by direction and protocol
(what ``/metrics`` serves) are summed at the same time: a handful of series
per interface, never one per flow.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from agent.flows.vms import VmPort

DIR_IN, DIR_OUT = 0, 1
DIRECTIONS = ("in", "out")
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp", 0: "non_ip"}

# flow tuple positions, as FlowTable.flows() gives them (ifindex first)
F_IFINDEX, F_DIR, F_VLAN, F_VNI, F_ETHERTYPE, F_SRC, F_DST, F_PROTO, F_SPORT, F_DPORT, F_PKTS, F_BYTES = range(12)


def protocol_name(proto: int, ethertype: int) -> str:
    if ethertype not in (0x0800, 0x86DD):
        return "non_ip"
    return PROTOCOLS.get(proto, "other")


@dataclass(frozen=True)
class FlowRecord:
    interface: str
    direction: int
    vlan: int
    vni: int
    ethertype: int
    src: bytes
    dst: bytes
    protocol: int
    src_port: int
    dst_port: int
    packets: int
    bytes: int
    vm: VmPort | None = None


@dataclass(frozen=True)
class FlowFilter:
    """Every field set must match; an empty filter matches every flow."""

    interface: str = ""        # a name or glob
    instance: str = ""         # a VM's UUID or name
    vni: int | None = None
    address: str = ""          # an IP or CIDR prefix, matched against src or dst

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return ipaddress.ip_network(self.address, strict=False) if self.address else None


@dataclass(frozen=True)
class InterfaceState:
    ifname: str
    ifindex: int
    rate: int
    samples: int = 0   # sampled packets read from the ring
    drops: int = 0     # sampled packets the full ring lost


@dataclass(frozen=True)
class Answer:
    flows: list[FlowRecord]
    window: float       # seconds actually covered (less than asked right after start)
    total_flows: int    # matching flows before the top N cut
    total_packets: int  # of the matching flows
    total_bytes: int


class FlowHub:
    """Thread-safe: the sampler adds, the API and the collector read."""

    def __init__(self, max_flows: int, retention: float = 60.0, step: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_flows, self.step = max_flows, step
        self.retention = retention
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[tuple[float, dict[tuple, list[int]]]] = deque(maxlen=max(1, int(retention / step) + 1))
        self._started = clock()
        self.overflow = 0
        self.flushes = 0
        self._iface_totals: dict[tuple[str, int, str], list[int]] = {}  # (ifname, dir, proto) -> [pkts, bytes]
        self._vm_totals: dict[tuple[str, int, str], list[int]] = {}     # (instance uuid, dir, proto)
        self._vm_info: dict[str, VmPort] = {}                          # instance uuid -> one of its ports
        self._interfaces: dict[str, InterfaceState] = {}
        self._vms: Mapping[str, VmPort] = {}
        self.table_counters: dict[str, int] = {}  # frames, truncated, malformed, evicted (the sampler's table)

    # -- the sampler's side -------------------------------------------------
    def set_vms(self, vms: Mapping[str, VmPort]) -> None:
        with self._lock:
            self._vms = dict(vms)

    def set_interface(self, state: InterfaceState) -> None:
        with self._lock:
            self._interfaces[state.ifname] = state

    def forget_interface(self, ifname: str) -> None:
        """An interface went away: its series leave ``/metrics``; its flows
        stay in the windows they belong to."""
        with self._lock:
            self._interfaces.pop(ifname, None)
            for key in [k for k in self._iface_totals if k[0] == ifname]:
                del self._iface_totals[key]

    def add(self, flows: Iterable[tuple], names: Mapping[int, str]) -> None:
        """One flush of the flow table (``FlowTable.flows()``); ``names``:
        ifindex -> interface name of the rings that made them."""
        now = self._clock()
        with self._lock:
            self.flushes += 1
            if not self._buckets or now - self._buckets[-1][0] >= self.step:
                self._buckets.append((now, {}))
            bucket = self._buckets[-1][1]
            vms = self._vms
            for f in flows:
                name = names.get(f[F_IFINDEX])
                if name is None:
                    continue
                pk, by = f[F_PKTS], f[F_BYTES]
                key = (name,) + tuple(f[F_DIR:F_PKTS])
                cell = bucket.get(key)
                if cell is None:
                    if len(bucket) >= self.max_flows:
                        self.overflow += 1
                    else:
                        bucket[key] = [pk, by]
                else:
                    cell[0] += pk
                    cell[1] += by
                proto = protocol_name(f[F_PROTO], f[F_ETHERTYPE])
                _bump(self._iface_totals, (name, f[F_DIR], proto), pk, by)
                vm = vms.get(name)
                if vm is not None and vm.instance_uuid:
                    self._vm_info[vm.instance_uuid] = vm
                    _bump(self._vm_totals, (vm.instance_uuid, f[F_DIR], proto), pk, by)

    # -- the readers' side --------------------------------------------------
    def interfaces(self) -> list[InterfaceState]:
        with self._lock:
            return list(self._interfaces.values())

    def totals(self) -> tuple[dict, dict, dict[str, VmPort]]:
        """(per-interface, per-VM, VM info) totals since start, copies."""
        with self._lock:
            live_vms = {v.instance_uuid for v in self._vms.values()}
            for uuid in [u for u in self._vm_info if u not in live_vms]:  # the VM left: its series too
                del self._vm_info[uuid]
                for key in [k for k in self._vm_totals if k[0] == uuid]:
                    del self._vm_totals[key]
            return ({k: tuple(v) for k, v in self._iface_totals.items()},
                    {k: tuple(v) for k, v in self._vm_totals.items()}, dict(self._vm_info))

    def query(self, window: float, top: int, by_packets: bool = False,
              flt: FlowFilter = FlowFilter()) -> Answer:
        now = self._clock()
        net = flt.network()
        with self._lock:
            since = now - window
            merged: dict[tuple, list[int]] = {}
            for start, bucket in self._buckets:
                if start + self.step <= since:
                    continue  # wholly before the window
                for key, (pk, by) in bucket.items():
                    cell = merged.get(key)
                    if cell is None:
                        merged[key] = [pk, by]
                    else:
                        cell[0] += pk
                        cell[1] += by
            vms = self._vms
        covered = min(window, now - self._started)
        rows = []
        for key, (pk, by) in merged.items():
            vm = vms.get(key[0])
            if not _matches(key, vm, flt, net):
                continue
            rows.append(FlowRecord(key[0], *key[1:], pk, by, vm))
        rows.sort(key=(lambda r: (r.packets, r.bytes)) if by_packets else (lambda r: (r.bytes, r.packets)),
                  reverse=True)
        return Answer(rows[:top], covered, len(rows), sum(r.packets for r in rows), sum(r.bytes for r in rows))


def _bump(totals: dict, key: tuple, pk: int, by: int) -> None:
    cell = totals.get(key)
    if cell is None:
        totals[key] = [pk, by]
    else:
        cell[0] += pk
        cell[1] += by


def _matches(key: tuple, vm: VmPort | None, flt: FlowFilter, net) -> bool:
    if flt.interface and not fnmatch.fnmatchcase(key[0], flt.interface):
        return False
    if flt.instance and (vm is None or flt.instance not in (vm.instance_uuid, vm.instance_name)):
        return False
    if flt.vni is not None and key[3] != flt.vni:
        return False
    if net is not None:
        src, dst = key[5], key[6]
        if not any(len(a) == (4 if net.version == 4 else 16) and ipaddress.ip_address(a) in net
                   for a in (src, dst)):
            return False
    return True
