"""The sampler: one thread that owns every interface's packet ring, feeds the
flow kernel, and hands the flows to the hub and the sFlow exporter.

- **Which interfaces**: the configured names and globs, matched against the
  namespace's links as a :class:`~agent.backends.links.LinkWatcher` keeps
  them; a new VM's tap is picked up when the watcher sees it, a removed one's
  ring is drained and closed (nothing leaks under tap churn).
- **Isolation**: the rings are only read here; the flow table is only
  touched here.  The API and the collector read the hub, which the sampler
  updates once per flush under a short lock, so a burst never blocks them: a
  ring the thread cannot keep up with fills, and the kernel drops and counts
  (``PACKET_STATISTICS``), reported per interface.
- **Cost**: one ``poll()`` per wake-up, one kernel call per ring block (no
  Python object per packet unless sFlow export is on, which needs each
  header).
"""
from __future__ import annotations

import fnmatch
import os
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from agent.backends.linkinfo import Link
from agent.backends.netlink import StatsDumper
from agent.backends.packet_ring import PacketRing, RingGeometry, packet_sockets
from agent.core import STATS_FIELDS, parse_stats_dump
from agent.flows.config import SamplingConfig, rate_for
from agent.flows.exporter import SflowExporter, if_counters
from agent.flows.hub import FlowHub, InterfaceState
from agent.flows.vms import directory_stamp, read_vm_ports
from agent.logs import get_logger

log = get_logger(__name__)
FLUSH_INTERVAL = 1.0      # seconds between hand-overs of the flow table to the hub
PARALLEL = 32            # threads opening or closing rings at once (each waits for an RCU grace period)
TABLE_COUNTERS = ("frames", "truncated", "malformed", "evicted")


class Sampler:
    """``table``: a ``FlowTable`` (``agent.core``); ``parse_frame``: the
    kernel's, for the VNI of exported headers.  ``open_ring`` is the
    backend's :class:`PacketRing` (tests pass their own)."""

    def __init__(self, cfg: SamplingConfig, hub: FlowHub, table, parse_frame: Callable | None = None,
                 exporter: SflowExporter | None = None, *,
                 open_ring: Callable[..., PacketRing] = PacketRing,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self.cfg, self.hub, self.table = cfg, hub, table
        self._parse_frame, self._exporter, self._open_ring = parse_frame, exporter, open_ring
        self._flush_interval = flush_interval
        self._netns = cfg.namespace or None
        # Here, not at the top: the link watcher's modules load only when
        # [sampling] is configured, not on every start.
        from agent.backends.links import LinkWatcher
        self._watcher = LinkWatcher(self._netns, on_change=lambda _c: self._wakeup())
        self._rings: dict[int, PacketRing] = {}    # ifindex -> ring
        self._samples: dict[int, int] = {}         # ifindex -> sampled packets read
        self._departed: dict[int, str] = {}        # closed since the last flush: ifindex -> name
        self._failed: dict[int, Link] = {}         # would not open, as the link was then
        self._seen_generation = -1
        self._poller: select.poll | None = None
        self._by_fd: dict[int, PacketRing] = {}
        self._wake = -1
        self._stop = False
        self._thread: threading.Thread | None = None
        self._dumper: StatsDumper | None = None
        self._vm_stamp: tuple[float, int] | None = None
        self._table_base = dict.fromkeys(TABLE_COUNTERS, 0)
        self._table_last = dict.fromkeys(TABLE_COUNTERS, 0)
        self.errors = 0

    # -- life -------------------------------------------------------------
    def start(self) -> None:
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self._watcher.start()
            # Sampling asked for but impossible (no CAP_NET_RAW, AF_PACKET
            # filtered by the unit) is said once, here, not per interface.
            for sock in packet_sockets(1, self._netns):
                sock.close()
            if self._exporter is not None and self.cfg.polling_interval > 0:
                self._dumper = StatsDumper(self._netns)
        except BaseException:
            self.close()
            raise
        self._refresh_vms(force=True)
        self._thread = threading.Thread(target=self._run, name="flow-sampler", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._wakeup()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is not None and self._thread.is_alive():
            # Unmapping a ring under a thread that still reads it would crash
            # the process; leaving it mapped until exit is the lesser harm.
            log.error("flows.sampler_stuck", rings=len(self._rings))
        else:
            _close_all(list(self._rings.values()))
            self._rings.clear()
        self._watcher.close()
        if self._dumper is not None:
            self._dumper.close()
            self._dumper = None
        if self._exporter is not None:
            self._exporter.close()
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1

    def _wakeup(self) -> None:
        if self._wake >= 0:
            try:
                os.eventfd_write(self._wake, 1)
            except OSError:
                pass

    def interfaces(self) -> dict[int, str]:
        """ifindex -> name of the interfaces sampled now."""
        return {i: r.ifname for i, r in list(self._rings.items())}

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        now = time.monotonic()
        next_flush, next_poll = now + self._flush_interval, now + self.cfg.polling_interval
        while not self._stop:
            try:
                if self._watcher.generation != self._seen_generation:
                    self._reconcile()
                if self._poller is None:  # the set of rings changed
                    self._poller, self._by_fd = select.poll(), {}
                    self._poller.register(self._wake, select.POLLIN)
                    for ring in self._rings.values():
                        self._poller.register(ring.fileno(), select.POLLIN)
                        self._by_fd[ring.fileno()] = ring
                poller, by_fd = self._poller, self._by_fd
                wait = max(0.0, min(next_flush, next_poll if self._dumper else next_flush) - time.monotonic())
                for fd, events in poller.poll(wait * 1000):
                    if fd == self._wake:
                        try:
                            os.eventfd_read(self._wake)
                        except BlockingIOError:
                            pass
                    elif fd in by_fd:
                        if events & select.POLLERR:  # the interface went down: not our error
                            by_fd[fd].clear_error()
                        self._drain(by_fd[fd])
                now = time.monotonic()
                if now >= next_flush:
                    self._flush()
                    self._refresh_vms()
                    next_flush = now + self._flush_interval
                if self._dumper is not None and now >= next_poll:
                    self._poll_counters()
                    next_poll = now + self.cfg.polling_interval
            except Exception as exc:  # the sampler must outlive one bad cycle
                self.errors += 1
                log.warning("flows.sampler_error", error=str(exc)[:200])
                time.sleep(1.0)  # what failed is tried again, not in a tight loop

    def _reconcile(self) -> None:
        generation = self._watcher.generation
        links = self._watcher.links()
        want = {i: l for i, l in links.items() if self._matches(l.name)}
        gone = [(ring, "removed" if index not in links else "renamed") for index, ring in self._rings.items()
                if index not in want or want[index].name != ring.ifname]
        if gone:
            self._close_rings(gone)
        for index in [i for i in self._failed if i not in want]:
            del self._failed[index]
        # One that would not open is tried again when its link changes.
        new = [l for i, l in want.items() if i not in self._rings and self._failed.get(i) != l]
        if new:
            self._open_all(new)
        self._seen_generation = generation
        self._refresh_vms()

    def _matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.cfg.interfaces)

    def _open_all(self, links: list[Link]) -> None:
        """Open the rings of ``links``: their sockets made in one visit to
        the namespace, the rings set up by several threads at once (each
        set-up waits for a kernel grace period; parallel ones share it)."""
        socks = packet_sockets(len(links), self._netns)

        def one(item: tuple[Link, socket.socket]) -> tuple[Link, int, PacketRing | OSError]:
            link, sock = item
            rate = self.cfg.rate or rate_for(link.speed_mbps)
            try:
                return link, rate, self._open_ring(link.name, link.ifindex, rate, self.cfg.header_bytes,
                                                   None, RingGeometry.for_speed(link.speed_mbps), sock=sock)
            except OSError as exc:  # gone again already, or the kernel refused
                return link, rate, exc
        with ThreadPoolExecutor(min(PARALLEL, len(links)), thread_name_prefix="flow-ring") as pool:
            opened = list(pool.map(one, zip(links, socks)))
        for link, rate, ring in opened:
            if isinstance(ring, OSError):
                self._failed[link.ifindex] = link
                log.warning("flows.ring_failed", device=link.name, error=str(ring)[:200])
                continue
            self._failed.pop(link.ifindex, None)
            self._rings[link.ifindex] = ring
            self._poller = None
            self._samples[link.ifindex] = 0
            self._departed.pop(link.ifindex, None)
            self.hub.set_interface(InterfaceState(link.name, link.ifindex, rate))
            log.info("flows.sampling", device=link.name, ifindex=link.ifindex, rate=rate,
                     header_bytes=self.cfg.header_bytes)

    def _close_rings(self, rings: list[tuple[PacketRing, str]]) -> None:
        """Drain, then close (in parallel, as opening), the rings of interfaces
        that went away (``why``: removed, renamed)."""
        for ring, _ in rings:
            try:
                self._drain(ring)
            except Exception as exc:
                log.warning("flows.drain_failed", device=ring.ifname, error=str(exc)[:200])
        _close_all([r for r, _ in rings])
        self._poller = None
        for ring, why in rings:
            del self._rings[ring.ifindex]  # after closing: interfaces() lists no closed ring
            self._samples.pop(ring.ifindex, None)
            self._departed[ring.ifindex] = ring.ifname  # its flows still carry its name at the next flush
            if self._exporter is not None:
                self._exporter.forget(ring.ifindex)
            log.info("flows.stopped", device=ring.ifname, ifindex=ring.ifindex, why=why)

    def _drain(self, ring: PacketRing) -> None:
        headers: list | None = [] if self._exporter is not None else None
        n = 0
        for block in ring.blocks():
            n += self.table.add_block(block, ring.ifindex, ring.rate, headers)
        if not n:
            return
        samples = self._samples.get(ring.ifindex, 0) + n
        self._samples[ring.ifindex] = samples
        if headers:
            self._exporter.flow_samples(ring.ifindex, ring.rate, samples * ring.rate, ring.drops, headers,
                                        self._vni_of)

    def _vni_of(self, header: bytes) -> int:
        return self._parse_frame(header)[2] if self._parse_frame is not None else 0

    def _flush(self) -> None:
        names = {}
        for index, ring in self._rings.items():
            _, drops = ring.stats()
            names[index] = ring.ifname
            self.hub.set_interface(InterfaceState(ring.ifname, index, ring.rate,
                                                  self._samples.get(index, 0), drops))
        current = set(names.values())
        names.update({i: n for i, n in self._departed.items() if i not in names})
        flows = self.table.flows()
        self.table.clear()
        self.hub.add(flows, names)
        for name in set(self._departed.values()) - current:
            self.hub.forget_interface(name)
        self._departed.clear()
        self.hub.table_counters = self._table_counters()

    def _table_counters(self) -> dict[str, int]:
        """The table's counters since start, whether or not clear() resets them."""
        out = {}
        for name in TABLE_COUNTERS:
            value = int(getattr(self.table, name, 0))
            if value < self._table_last[name]:
                self._table_base[name] += self._table_last[name]
            self._table_last[name] = value
            out[name] = self._table_base[name] + value
        out["size"] = int(getattr(self.table, "size", 0))
        return out

    def _refresh_vms(self, force: bool = False) -> None:
        directory = self.cfg.libvirt_dir
        if not directory:
            return
        stamp = directory_stamp(directory)
        if force or stamp != self._vm_stamp:
            self._vm_stamp = stamp
            self.hub.set_vms(read_vm_ports(directory))

    def _poll_counters(self) -> None:
        indices, counters = parse_stats_dump(self._dumper.dump())
        links = self._watcher.links()
        width = len(STATS_FIELDS)
        out = []
        for row, index in enumerate(indices):
            if index in self._rings:
                out.append(if_counters(index, counters[row * width:(row + 1) * width], STATS_FIELDS,
                                       links.get(index)))
        self._exporter.counter_samples(out)


def _close_all(rings: list[PacketRing]) -> None:
    if len(rings) > 1:
        with ThreadPoolExecutor(min(PARALLEL, len(rings)), thread_name_prefix="flow-ring") as pool:
            list(pool.map(PacketRing.close, rings))
    for ring in rings:
        ring.close()  # idempotent; the one ring of a single removal
