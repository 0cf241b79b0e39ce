"""Which NICs sit near a GPU on the PCIe tree, from sysfs: GPUDirect RDMA
wants the NIC below the same PCIe switch as the GPU, so that traffic between
them never crosses the CPU.

A device's resolved sysfs path lists its ancestors: the host bridge
(``pci0000:17``), then each PCIe bridge down to the device
(``/sys/devices/pci0000:17/0000:17:01.0/0000:18:00.0/0000:19:00.0``).  Two
devices that share a PCI bridge are below the same switch (a root port has
one link, so a shared one has a switch under it); two that share only the
host bridge meet in the root complex.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from agent.backends.hostfs import HostFS

SWITCH, HOST_BRIDGE = "switch", "host_bridge"
_PCI = re.compile(r"[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
_HOST = re.compile(r"pci[0-9a-f]{4,}:[0-9a-f]{2}")


@dataclass(frozen=True)
class NearbyNic:
    name: str
    pci_address: str
    affinity: str  # SWITCH or HOST_BRIDGE


def sysfs_address(nvml_bus_id: str) -> str:
    """NVML's ``00000000:18:00.0`` as sysfs names it: ``0000:18:00.0``."""
    domain, rest = nvml_bus_id.lower().split(":", 1)
    return f"{int(domain, 16):04x}:{rest}"


def _chain(hostfs: HostFS, rel: str) -> list[str]:
    """The host bridge and PCI functions above and including a device."""
    real = os.path.realpath(hostfs.path(rel))
    return [p for p in real.split(os.sep) if _HOST.fullmatch(p) or _PCI.fullmatch(p)]


def nearby_nics(hostfs: HostFS, nvml_bus_id: str) -> list[NearbyNic]:
    gpu = _chain(hostfs, f"sys/bus/pci/devices/{sysfs_address(nvml_bus_id)}")
    if len(gpu) < 2:
        return []  # not in sysfs (a container without /sys, a test's fake GPU)
    out = []
    for name in hostfs.listdir("sys/class/net"):
        if not hostfs.exists(f"sys/class/net/{name}/device"):
            continue  # virtual interface
        nic = _chain(hostfs, f"sys/class/net/{name}/device")
        if len(nic) < 2 or nic[0] != gpu[0]:
            continue
        shared = 0
        for a, b in zip(gpu[1:-1], nic[1:-1]):  # bridges above each device
            if a != b:
                break
            shared += 1
        out.append(NearbyNic(name, nic[-1], SWITCH if shared else HOST_BRIDGE))
    return sorted(out, key=lambda n: (n.affinity != SWITCH, n.name))
