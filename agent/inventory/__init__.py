"""Hardware and OS inventory of this node (``hostagent.v1.Inventory``).

One module per part, each a pure parser over text plus a ``collect_*``
function that reads through :class:`~agent.backends.hostfs.HostFS`:

=========  =====================================================
host.py    host name, machine-id, uname, os-release, boot time, role
dmi.py     ``sys/class/dmi/id``
cpu.py     ``proc/cpuinfo``, sysfs CPU topology, NUMA nodes
memory.py  ``proc/meminfo``
block.py   ``sys/block``, ``run/udev/data``
=========  =====================================================

:func:`collect_inventory` reads every part; a part that raises is logged and
reported as its empty default (and named in ``failed_parts``), never failing
the whole inventory.  :class:`InventoryCache` is what the daemon holds.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from agent.backends.hostfs import HostFS
from agent.inventory import block, cpu, dmi, host, memory, nics
from agent.inventory.host import SystemInfo, SystemProvider, local_system
from agent.inventory.model import (BlockDevice, CpuInfo, DmiInfo, HostInfo, HostRole,
                                   MemoryInfo, NodeInventory, NumaNode)

__all__ = [
    "BlockDevice", "CpuInfo", "DmiInfo", "HostInfo", "HostRole", "InventoryCache",
    "MemoryInfo", "NodeInventory", "NumaNode", "SystemInfo", "SystemProvider",
    "collect_inventory", "local_system",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _part(name: str, read: Callable[[], T], default: T, failed: list[str]) -> T:
    start = time.monotonic()
    try:
        value = read()
    except Exception:  # one part must never take the others down
        logger.warning("inventory part %r failed; reporting it empty", name, exc_info=True)
        failed.append(name)
        return default
    logger.debug("inventory part %r read in %.3fs", name, time.monotonic() - start)
    return value


def collect_inventory(hostfs: HostFS, system: SystemProvider | None = None) -> NodeInventory:
    """Read the whole inventory now.

    ``system`` supplies what is not a file (host name, uname, boot time);
    :func:`~agent.inventory.host.local_system` when ``None``.
    """
    failed: list[str] = []
    return NodeInventory(
        host=_part("host", lambda: host.collect_host(hostfs, system), HostInfo(), failed),
        dmi=_part("dmi", lambda: dmi.collect_dmi(hostfs), DmiInfo(), failed),
        cpu=_part("cpu", lambda: cpu.collect_cpu(hostfs), CpuInfo(), failed),
        memory=_part("memory", lambda: memory.collect_memory(hostfs), MemoryInfo(), failed),
        block_devices=_part("block", lambda: block.collect_block_devices(hostfs), (), failed),
        nics=_part("nics", lambda: tuple(nics.collect_nics(hostfs)), (), failed),
        collected_at=time.time(),
        failed_parts=tuple(failed),
    )


class InventoryCache:
    """The last inventory, re-read when older than ``max_age`` seconds or on request.

    Thread-safe: one collection at a time; callers that asked for a refresh
    while another was running get that fresh result instead of reading again.
    """

    def __init__(self, hostfs: HostFS, system: SystemProvider | None = None, *,
                 max_age: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 collect: Callable[[HostFS, SystemProvider | None], NodeInventory] = collect_inventory,
                 ) -> None:
        self._hostfs = hostfs
        self._system = system
        self._max_age = max_age
        self._clock = clock
        self._collect = collect
        self._lock = threading.Lock()
        self._inventory: NodeInventory | None = None
        self._read_at = 0.0  # clock() when the collection behind _inventory began
        self._started = 0  # collections begun so far

    def get(self, refresh: bool = False) -> NodeInventory:
        seen = self._started
        with self._lock:
            inv = self._inventory
            stale = inv is None or self._clock() - self._read_at > self._max_age
            # A refresh is served by any collection begun after it was asked for.
            if stale or (refresh and self._started == seen):
                self._started += 1
                started = self._clock()
                inv = self._collect(self._hostfs, self._system)
                self._inventory, self._read_at = inv, started
            assert inv is not None
            return inv
