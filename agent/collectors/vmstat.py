"""Virtual memory statistics from ``/proc/vmstat``, under node_exporter's names.

Format: one ``name value`` pair per line (``pgfault 918273645512``); the set
of fields depends on the kernel (``oom_kill`` appeared in 4.13).  A field
becomes ``node_vmstat_<name>``; which fields are served is node_exporter's
``--collector.vmstat.fields`` regular expression, default
``^(oom_kill|pgpg|pswp|pg.*fault).*`` (paging in/out, swapping in/out, minor
and major page faults, OOM kills), the option ``fields`` here.

node_exporter types these *untyped*; here they are gauges under the same
names (most are counters since boot: use ``rate()`` in PromQL as with
node_exporter).

The file's fields and their order never change while the kernel runs, and
the default serves about 10 of its 180 lines: a run reads only the lines
a plan (made by the full parse whenever the line count or a name differs)
points at.
"""
from __future__ import annotations

import re

from agent.config_values import regex
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

DEFAULT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"
_VALID = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parse_vmstat(text: str) -> dict[str, int]:
    """Every ``name value`` line of ``/proc/vmstat``, in file order."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and _VALID.match(parts[0]):
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


class VmstatCollector:
    name = "vmstat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        fields = ctx.options.get("fields", DEFAULT_FIELDS)
        self._fields = fields if isinstance(fields, re.Pattern) else re.compile(fields)
        self._families: dict[str, FamilyDesc | None] = {}
        self._plan: tuple[int, tuple[tuple[int, str, FamilyDesc], ...]] | None = None

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text("proc/vmstat")
        except FileNotFoundError as exc:
            raise NoData("no /proc/vmstat") from exc
        lines = text.splitlines()
        if self._plan is not None and self._plan[0] == len(lines):
            out = []
            for row, key, family in self._plan[1]:
                parts = lines[row].split()
                if parts[0] != key:
                    break  # another layout: plan again
                out.append((family, int(parts[1])))
            else:
                for family, value in out:
                    batch.gauge(family, value)
                return
        picks = []
        for row, line in enumerate(lines):
            parts = line.split()
            if parts and parts[0] in parse_vmstat(line) and self._family(parts[0]) is not None:
                picks.append((row, parts[0], self._family(parts[0])))
        self._plan = (len(lines), tuple(picks))
        self.collect_parsed(batch, text)

    def collect_parsed(self, batch: Batch, text: str | None = None) -> None:
        """The same as :meth:`collect` by a full parse (what the plan is checked against)."""
        if text is None:
            text = self._fs.read_text("proc/vmstat")
        for key, value in parse_vmstat(text).items():
            family = self._family(key)
            if family is not None:
                batch.gauge(family, value)

    def _family(self, key: str) -> FamilyDesc | None:
        """The family of a field, None when ``fields`` leaves it out (cached)."""
        if key not in self._families:
            family = None
            # A name our model refuses for a gauge (``*_total``) is left out too.
            if self._fields.search(key) and not key.endswith("_total"):
                family = FamilyDesc(f"node_vmstat_{key}", MetricType.GAUGE,
                                    f"/proc/vmstat field {key}")
            self._families[key] = family
        return self._families[key]


COLLECTOR = CollectorInfo(name="vmstat", factory=VmstatCollector, on_scrape=True, inline=True, options={"fields": regex})
