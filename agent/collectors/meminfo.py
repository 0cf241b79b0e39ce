"""Memory: every field of ``/proc/meminfo``, plus hugepages per page size.

Names follow node_exporter's ``meminfo`` collector: ``MemTotal: 24684096 kB``
becomes ``node_memory_MemTotal_bytes`` (value times 1024), ``Active(anon)``
becomes ``Active_anon``, and unit-less fields keep their name
(``node_memory_HugePages_Total``).  Families are made from the keys the kernel
prints, so new kernel fields appear without a code change.

Per-size hugepage pools come from
``/sys/kernel/mm/hugepages/hugepages-<N>kB/`` (``/proc/meminfo`` shows only the
default size) with a ``size`` label in bytes.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
HUGEPAGES_DIR = "sys/kernel/mm/hugepages"
_POOL = ("size",)
# (sysfs attribute, family)
HUGEPAGES = (
    ("nr_hugepages", FamilyDesc("hostagent_hugepages_configured", G,
                                "Hugepages in the pool of this page size", label_names=_POOL)),
    ("free_hugepages", FamilyDesc("hostagent_hugepages_free", G,
                                  "Hugepages of this size not yet allocated", label_names=_POOL)),
    ("resv_hugepages", FamilyDesc("hostagent_hugepages_reserved", G,
                                  "Hugepages of this size reserved but not yet allocated",
                                  label_names=_POOL)),
    ("surplus_hugepages", FamilyDesc("hostagent_hugepages_surplus", G,
                                     "Hugepages of this size above nr_hugepages (overcommit)",
                                     label_names=_POOL)),
)

_PAREN = re.compile(r"\((.*)\)")
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_POOL_DIR = re.compile(r"^hugepages-(\d+)kB$")


class MeminfoField(NamedTuple):
    key: str  # as the kernel prints it, e.g. "Active(anon)"
    value: int  # in bytes when the kernel gives kB, else as printed
    is_bytes: bool


def parse_meminfo(text: str) -> list[MeminfoField]:
    """Fields in file order; lines that are not ``Key: value [kB]`` are skipped."""
    out: list[MeminfoField] = []
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit():
            continue
        is_bytes = len(parts) > 1 and parts[1] == "kB"
        value = int(parts[0])
        out.append(MeminfoField(key.strip(), value * 1024 if is_bytes else value, is_bytes))
    return out


def metric_name(field: MeminfoField) -> str:
    """node_exporter's name for a field: ``Active(anon)`` -> ``node_memory_Active_anon_bytes``."""
    name = _INVALID.sub("_", _PAREN.sub(r"_\1", field.key))
    return f"node_memory_{name}_bytes" if field.is_bytes else f"node_memory_{name}"


class MeminfoCollector:
    name = "meminfo"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._families: dict[tuple[str, bool], FamilyDesc] = {}

    def collect(self, batch: Batch) -> None:
        seen: set[str] = set()
        for field in parse_meminfo(self._fs.read_text("proc/meminfo")):
            family = self._family(field)
            if family.name not in seen:  # two keys cleaning to one name: keep the first
                seen.add(family.name)
                batch.gauge(family, field.value)
        self._hugepages(batch)

    def _family(self, field: MeminfoField) -> FamilyDesc:
        key = (field.key, field.is_bytes)
        family = self._families.get(key)
        if family is None:
            family = self._families[key] = FamilyDesc(
                metric_name(field), G, f"Memory information field {field.key} (/proc/meminfo)",
                "bytes" if field.is_bytes else "")
        return family

    def _hugepages(self, batch: Batch) -> None:
        for entry in self._fs.listdir(HUGEPAGES_DIR):
            match = _POOL_DIR.match(entry)
            if match is None:
                continue
            size = str(int(match.group(1)) * 1024)
            for attr, family in HUGEPAGES:
                value = self._fs.read_int(f"{HUGEPAGES_DIR}/{entry}/{attr}")
                if value is not None:
                    batch.gauge(family, value, size)


COLLECTOR = CollectorInfo(name="meminfo", factory=MeminfoCollector, on_scrape=True, inline=True)
