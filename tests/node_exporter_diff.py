"""Compares what the agent serves with what node_exporter serves on the same
host (issue 12): family names, types, label names, series and values, with a
tolerance for the moment of reading.  Pure functions over the text format;
``tests/test_node_exporter_side_by_side.py`` scrapes both and checks that
every difference found is listed, with its reason, in docs/metrics.md
("Differences from node_exporter, checked")."""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path

from agent.exposition_parser import ParsedFamily, parse_text

KINDS = ("missing", "extra", "type", "labels", "series", "value")
# Families whose value depends on when it is read, beyond a counter's bracket:
# (relative, absolute) tolerance.  The default is (0.02, 0).
TOLERANCE = {
    "node_time_seconds": (0.0, 5.0),
    "node_timex_*": (0.5, 0.01),
    "node_memory_*": (0.05, 0.0),  # read at the collector's interval, not per scrape
    "node_load*": (0.2, 0.05),
    "node_entropy_available_bits": (1.0, 256.0),
    "node_procs_*": (1.0, 10.0),
    "node_sockstat_*": (0.5, 16.0),
    "node_filefd_allocated": (0.1, 64.0),
    "node_nf_conntrack_entries": (0.5, 32.0),
    "node_filesystem_*": (0.01, 1 << 20),
    "node_vmstat_*": (0.05, 0.0),
}
Key = frozenset  # of (label, value) pairs, empty values dropped as Prometheus does


@dataclass(frozen=True)
class Difference:
    family: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.family}: {self.kind} {self.detail}".rstrip()


def families(text: str) -> dict[str, ParsedFamily]:
    return {f.name: f for f in parse_text(text)}


def series(family: ParsedFamily) -> dict[Key, float]:
    return {Key((k, v) for k, v in s.labels if v != ""): s.value
            for s in family.samples if s.name == family.name}


def label_names(family: ParsedFamily) -> set[str]:
    return {k for s in family.samples for k, v in s.labels if v != ""}


def _tolerance(name: str) -> tuple[float, float]:
    for pattern, tol in TOLERANCE.items():
        if fnmatch.fnmatchcase(name, pattern):
            return tol
    return 0.02, 0.0


def _within(name: str, before: float, agent: float, after: float) -> bool:
    """``agent`` read between node_exporter's two readings: inside their
    range, widened by the family's tolerance."""
    if math.isnan(agent) or math.isnan(before):
        return math.isnan(agent) and math.isnan(before)
    rel, absolute = _tolerance(name)
    lo, hi = min(before, after), max(before, after)
    slack = rel * max(abs(lo), abs(hi)) + absolute
    return lo - slack <= agent <= hi + slack


def _type(family: ParsedFamily) -> str:
    return "gauge" if family.type == "untyped" else family.type


def compare(before: str, agent: str, after: str) -> list[Difference]:
    """Differences between node_exporter (read just ``before`` and ``after``
    the agent) and the agent.  Agent families outside node_exporter's
    namespace (``hostagent_*``) are not differences."""
    ne1, ag, ne2 = families(before), families(agent), families(after)
    out: list[Difference] = []
    for name, fam in sorted(ne1.items()):
        mine = ag.get(name)
        if mine is None:
            out.append(Difference(name, "missing"))
            continue
        if _type(fam) != _type(mine):
            out.append(Difference(name, "type", f"{fam.type} vs {mine.type}"))
        if label_names(fam) != label_names(mine):
            out.append(Difference(name, "labels", f"{sorted(label_names(fam))} vs "
                                                  f"{sorted(label_names(mine))}"))
            continue
        theirs, mine_s = series(fam), series(mine)
        stable = {k: v for k, v in theirs.items() if k in series(ne2.get(name, fam))}
        lacking = [k for k in stable if k not in mine_s]
        extra = [k for k in mine_s if k not in theirs]
        if lacking or extra:
            out.append(Difference(name, "series", f"{len(lacking)} missing, {len(extra)} extra, "
                                                  f"e.g. {_show((lacking + extra)[0])}"))
        after_s = series(ne2.get(name, fam))
        wrong = [k for k, v in stable.items()
                 if k in mine_s and not _within(name, v, mine_s[k], after_s.get(k, v))]
        if wrong:
            k = wrong[0]
            out.append(Difference(name, "value", f"{len(wrong)} series, e.g. {_show(k)}: "
                                                 f"{stable[k]!r} / {mine_s[k]!r} / {after_s.get(k)!r}"))
    for name in sorted(ag):
        if name not in ne1 and name.startswith("node_"):
            out.append(Difference(name, "extra"))
    return out


def _show(key: Key) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(key)) + "}"


_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([a-z, ]+?)\s*\|\s*(.+?)\s*\|\s*$")


def listed(doc: Path, section: str = "## Differences from node_exporter, checked") -> dict[tuple[str, str], str]:
    """(family pattern, kind) -> reason, from the table under ``section``."""
    text = doc.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    rows: dict[tuple[str, str], str] = {}
    for line in text[start:end if end > 0 else None].splitlines():
        m = _ROW.match(line)
        if m and m.group(1) != "family":
            for kind in m.group(2).replace(" ", "").split(","):
                rows[(m.group(1), kind)] = m.group(3)
    return rows


def unlisted(found: list[Difference], rows: dict[tuple[str, str], str]) -> list[Difference]:
    return [d for d in found
            if not any(kind == d.kind and fnmatch.fnmatchcase(d.family, pattern)
                       for pattern, kind in rows)]
