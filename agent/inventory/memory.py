"""Memory: ``/proc/meminfo``."""
from __future__ import annotations

from agent.backends.hostfs import HostFS
from agent.inventory.model import MemoryInfo

_UNITS = {"kB": 1024}  # the only unit the kernel writes


def parse_meminfo(text: str) -> dict[str, int]:
    """``Key: value [kB]`` lines as integers, sizes in bytes.

    Unitless counts (``HugePages_Total``) stay counts; unparsable lines are
    skipped.
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1:
            value *= _UNITS.get(parts[1], 1)
        out[key.strip()] = value
    return out


def memory_from_meminfo(text: str) -> MemoryInfo:
    fields = parse_meminfo(text)
    return MemoryInfo(
        total_bytes=fields.get("MemTotal", 0),
        swap_total_bytes=fields.get("SwapTotal", 0),
        hugepage_size_bytes=fields.get("Hugepagesize", 0),
        hugepages_total=fields.get("HugePages_Total", 0),
    )


def collect_memory(hostfs: HostFS) -> MemoryInfo:
    return memory_from_meminfo(hostfs.read_text("proc/meminfo"))
