"""Processors: ``/proc/cpuinfo``, sysfs CPU topology and NUMA nodes.

* model, vendor, flags, microcode, signature: ``proc/cpuinfo`` (x86 and arm64
  formats).
* topology: ``sys/devices/system/cpu/cpuN/topology/{physical_package_id,
  core_id}`` of the online CPUs; sockets are distinct package ids, cores
  distinct (package, core) pairs.  Without sysfs topology the cpuinfo
  ``physical id``/``core id`` are used; without either, one socket and one
  core per thread.
* threads: ``sys/devices/system/cpu/online``, else the cpuinfo processors.
* NUMA: ``sys/devices/system/node/nodeN/{cpulist,meminfo}``; without node
  directories, one node 0 holding every CPU and MemTotal.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.inventory.memory import parse_meminfo
from agent.inventory.model import CpuInfo, NumaNode

CPU_DIR = "sys/devices/system/cpu"
NODE_DIR = "sys/devices/system/node"

# arm64 "CPU implementer" -> vendor, and (implementer, part) -> core name.
ARM_IMPLEMENTERS = {
    0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu",
    0x48: "HiSilicon", 0x4E: "NVIDIA", 0x50: "APM", 0x51: "Qualcomm",
    0x61: "Apple", 0xC0: "Ampere",
}
ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53", (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72", (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1", (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD4F): "Neoverse-V2",
    (0x48, 0xD01): "Kunpeng-920", (0x4E, 0x004): "Carmel",
    (0xC0, 0xAC3): "AmpereOne",
}

_NODE_MEMTOTAL = re.compile(r"^Node\s+\d+\s+MemTotal:\s+(\d+)\s*kB", re.M)


class CpuinfoSummary(NamedTuple):
    """What ``/proc/cpuinfo`` says, before sysfs is consulted."""

    model: str = ""
    vendor: str = ""
    flags: tuple[str, ...] = ()
    microcode: str = ""
    signature: str = ""
    processors: tuple[int, ...] = ()
    # (physical id, core id) per processor; empty when cpuinfo has none.
    topology: tuple[tuple[int, int], ...] = ()


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """Blocks separated by blank lines, each a dict of ``key: value`` lines.

    arm kernels may end with a block without ``processor`` (``Hardware``...).
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
        elif sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _int(value: str | None) -> int | None:
    """Decimal or ``0x`` hexadecimal; ``None`` when absent or malformed."""
    if value is None:
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def summarize_cpuinfo(text: str) -> CpuinfoSummary:
    blocks = parse_cpuinfo(text)
    procs = [b for b in blocks if _int(b.get("processor")) is not None]
    merged: dict[str, str] = {}
    for block in reversed(blocks):  # the first processor's values win
        merged.update(block)
    first = procs[0] if procs else merged
    flags = (first.get("flags") or first.get("Features") or "").split()
    implementer = _int(first.get("CPU implementer"))
    if implementer is not None:  # arm64
        part = _int(first.get("CPU part")) or 0
        variant = _int(first.get("CPU variant")) or 0
        model = (merged.get("model name") or merged.get("Hardware")
                 or ARM_PARTS.get((implementer, part))
                 or f"implementer {implementer:#x} part {part:#x}")
        vendor = ARM_IMPLEMENTERS.get(implementer, f"{implementer:#x}")
        revision = first.get("CPU revision", "0")
        signature = f"{implementer:#x}.{part:#x}.r{variant}p{revision}"
    else:
        model = first.get("model name", "")
        vendor = first.get("vendor_id", "")
        fms = [first.get(k, "") for k in ("cpu family", "model", "stepping")]
        signature = ".".join(fms) if all(fms) else ""
    topology: list[tuple[int, int]] = []
    for block in procs:
        package, core = _int(block.get("physical id")), _int(block.get("core id"))
        if package is None or core is None:
            topology = []
            break
        topology.append((package, core))
    return CpuinfoSummary(
        model=model, vendor=vendor, flags=tuple(flags),
        microcode=first.get("microcode", ""), signature=signature,
        processors=tuple(int(b["processor"]) for b in procs),
        topology=tuple(topology))


def parse_cpulist(text: str) -> list[int]:
    """Kernel CPU list (``0-3,8-11``) to sorted CPU numbers."""
    cpus: set[int] = set()
    for item in text.strip().split(","):
        if not item.strip():
            continue
        lo, _, hi = item.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def parse_node_memtotal(text: str) -> int:
    """Bytes of ``Node N MemTotal: X kB`` in a node's ``meminfo``; 0 if absent."""
    match = _NODE_MEMTOTAL.search(text)
    return int(match.group(1)) * 1024 if match else 0


def count_topology(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    """(sockets, cores) of (package id, core id) pairs, one per logical CPU."""
    return len({p for p, _ in pairs}), len(set(pairs))


def _online_cpus(hostfs: HostFS, summary: CpuinfoSummary) -> list[int]:
    online = hostfs.read_value(f"{CPU_DIR}/online")
    if online:
        return parse_cpulist(online)
    return sorted(summary.processors)


def _sysfs_topology(hostfs: HostFS, cpus: list[int]) -> list[tuple[int, int]]:
    pairs = []
    for cpu in cpus:
        base = f"{CPU_DIR}/cpu{cpu}/topology"
        package = hostfs.read_int(f"{base}/physical_package_id")
        core = hostfs.read_int(f"{base}/core_id")
        if package is None or core is None:
            return []
        pairs.append((package, core))
    return pairs


def _numa_nodes(hostfs: HostFS, cpus: list[int]) -> tuple[NumaNode, ...]:
    nodes = []
    for entry in hostfs.listdir(NODE_DIR):
        if not re.fullmatch(r"node\d+", entry):
            continue
        base = f"{NODE_DIR}/{entry}"
        cpulist = hostfs.read_value(f"{base}/cpulist", "") or ""
        try:
            meminfo = hostfs.read_text(f"{base}/meminfo")
        except OSError:
            meminfo = ""
        nodes.append(NumaNode(id=int(entry[4:]), cpus=tuple(parse_cpulist(cpulist)),
                              memory_bytes=parse_node_memtotal(meminfo)))
    if nodes:
        return tuple(sorted(nodes, key=lambda n: n.id))
    try:
        total = parse_meminfo(hostfs.read_text("proc/meminfo")).get("MemTotal", 0)
    except OSError:
        total = 0
    return (NumaNode(id=0, cpus=tuple(cpus), memory_bytes=total),)


def collect_cpu(hostfs: HostFS) -> CpuInfo:
    summary = summarize_cpuinfo(hostfs.read_text("proc/cpuinfo"))
    cpus = _online_cpus(hostfs, summary)
    pairs = _sysfs_topology(hostfs, cpus) or list(summary.topology)
    if pairs:
        sockets, cores = count_topology(pairs)
    else:
        sockets, cores = (1, len(cpus)) if cpus else (0, 0)
    return CpuInfo(
        model=summary.model, vendor=summary.vendor,
        sockets=sockets, cores=cores, threads=len(cpus),
        flags=summary.flags,
        virtualization_capable=bool({"vmx", "svm"} & set(summary.flags)),
        microcode=summary.microcode, numa_nodes=_numa_nodes(hostfs, cpus),
        signature=summary.signature)
