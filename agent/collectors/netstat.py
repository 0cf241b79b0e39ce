"""Protocol statistics (``netstat -s``) from ``/proc/net/netstat``,
``/proc/net/snmp`` and ``/proc/net/snmp6``, as node_exporter's netstat
collector serves them.

``/proc/net/netstat`` and ``/proc/net/snmp`` hold pairs of lines, a header
and its values, each starting with the protocol::

    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens ...
    Tcp: 1 200 120000 -1 5716 ...

``/proc/net/snmp6`` (absent when IPv6 is disabled) has one ``name value``
line per field, the protocol being the name up to its first ``6``::

    Ip6InReceives                   5806

Every field becomes ``node_netstat_<Protocol>_<Field>`` (``Tcp_ActiveOpens``,
``Ip6_InOctets``), a gauge: node_exporter serves them untyped, and some are
gauges (``Tcp_CurrEstab``, ``Ip_Forwarding``) among the counters.  Only the
fields matching the ``fields`` option are served; its default is
node_exporter's ``--collector.netstat.fields`` default.  All three files are
per network namespace: the agent's own.

The files' layout (header lines, snmp6 names) never changes while the
kernel runs, and a scrape wants about 40 of their 400 fields: a run splits
only the value lines it needs and converts only the wanted fields, by a
plan made with the parsers below whenever the layout differs from the
last one (it runs at every scrape).
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

from agent.config_values import Invalid
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

DEFAULT_FIELDS = (
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$")
FILES = ("proc/net/netstat", "proc/net/snmp")  # required: every kernel with networking has them
SNMP6 = "proc/net/snmp6"
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class NetStat(NamedTuple):
    protocol: str  # "Tcp", "TcpExt", "Ip6"...
    field: str  # "ActiveOpens"
    value: float

    @property
    def key(self) -> str:
        """``Tcp_ActiveOpens``: what the ``fields`` pattern is matched against."""
        return f"{self.protocol}_{self.field}"


def parse_netstat(text: str) -> list[NetStat]:
    """``/proc/net/netstat`` or ``/proc/net/snmp``: header/value line pairs.
    Raises ``ValueError`` when a pair does not line up."""
    out: list[NetStat] = []
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError(f"odd number of lines ({len(lines)}): header without values")
    for names, values in zip(lines[0::2], lines[1::2]):
        if names[0] != values[0] or not names[0].endswith(":"):
            raise ValueError(f"header {names[0]!r} followed by values of {values[0]!r}")
        if len(names) != len(values):
            raise ValueError(f"{names[0]} has {len(names) - 1} names and {len(values) - 1} values")
        protocol = names[0][:-1]
        out.extend(NetStat(protocol, n, float(v)) for n, v in zip(names[1:], values[1:]))
    return out


def parse_snmp6(text: str) -> list[NetStat]:
    """``/proc/net/snmp6``: ``Ip6InReceives 5806`` lines; names without a
    ``6`` (none today) are skipped, as node_exporter skips them."""
    out: list[NetStat] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        six = parts[0].find("6")
        if six < 0:
            continue
        out.append(NetStat(parts[0][:six + 1], parts[0][six + 1:], float(parts[1])))
    return out


def fields_pattern(v: Any) -> re.Pattern[str]:
    """Config checker of the ``fields`` option: a regular expression, matched
    (anywhere, as Go's ``MatchString``) against ``Protocol_Field``."""
    if not isinstance(v, str):
        raise Invalid(f"expected a regular expression (string), got {type(v).__name__}")
    try:
        return re.compile(v)
    except re.error as exc:
        raise Invalid(f"invalid regular expression {v!r}: {exc}") from None


class _Plan(NamedTuple):
    headers: tuple[tuple[str, ...], ...]  # the header lines of each pair file
    snmp6_lines: int
    picks: tuple  # per pair file: ((value row, ((column, family), ...)), ...)
    snmp6: tuple  # ((row, name, family), ...)


class NetstatCollector:
    name = "netstat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        fields = ctx.options.get("fields")
        self._fields = fields if isinstance(fields, re.Pattern) else fields_pattern(fields or DEFAULT_FIELDS)
        self._families: dict[str, FamilyDesc | None] = {}  # key -> family; None: filtered out
        self._plan: _Plan | None = None

    def collect(self, batch: Batch) -> None:
        try:
            pairs = [[line for line in self._fs.read_text(rel).splitlines() if line.strip()]
                     for rel in FILES]
        except FileNotFoundError:
            raise NoData("no /proc/net/netstat or /proc/net/snmp: no networking here") from None
        try:
            six = self._fs.read_text(SNMP6).splitlines()
        except FileNotFoundError:  # IPv6 disabled
            six = []
        headers = tuple(tuple(p[0::2]) for p in pairs)
        plan = self._plan
        if plan is None or plan.headers != headers or plan.snmp6_lines != len(six):
            plan = self._plan = self._make_plan(pairs, six, headers)
        out: list[tuple[FamilyDesc, float]] = []
        for lines, picks in zip(pairs, plan.picks):
            for row, cols in picks:
                fields = lines[row].split()
                out.extend((family, float(fields[col])) for col, family in cols)
        for row, name, family in plan.snmp6:
            parts = six[row].split()
            if parts[0] != name:  # same length, other names: make the plan again
                self._plan = None
                return self.collect(batch)
            out.append((family, float(parts[1])))
        for family, value in out:
            batch.gauge(family, value)

    def _make_plan(self, pairs: list[list[str]], six: list[str], headers) -> "_Plan":
        """Where each served field is, from a full parse (which also checks
        the pairs line up).  A field in two files is served from the last,
        as the full parse's dict kept it."""
        chosen: dict[str, tuple[int, int, int, str]] = {}  # key -> file, value row, column, name
        for f, lines in enumerate(pairs):
            parse_netstat("\n".join(lines))  # raises on misaligned pairs
            for row in range(1, len(lines), 2):
                names = lines[row - 1].split()
                for col in range(1, len(names)):
                    chosen[f"{names[0][:-1]}_{names[col]}"] = (f, row, col, "")
        for row, line in enumerate(six):
            for stat in parse_snmp6(line):
                chosen[stat.key] = (len(pairs), row, 1, line.split()[0])
        picks: list[dict[int, list]] = [{} for _ in pairs]
        snmp6 = []
        for key, (f, row, col, name) in chosen.items():
            protocol, _, field = key.partition("_")
            family = self._family(key, NetStat(protocol, field, 0.0))
            if family is None:
                continue
            if f < len(pairs):
                picks[f].setdefault(row, []).append((col, family))
            else:
                snmp6.append((row, name, family))
        return _Plan(headers, len(six), tuple(tuple((r, tuple(c)) for r, c in p.items()) for p in picks),
                     tuple(snmp6))

    def collect_parsed(self, batch: Batch) -> None:
        """The same as :meth:`collect` by a full parse of every field (what
        the plan is checked against in the tests)."""
        stats: dict[str, NetStat] = {}
        try:
            for rel in FILES:
                stats.update((s.key, s) for s in parse_netstat(self._fs.read_text(rel)))
        except FileNotFoundError:
            raise NoData("no /proc/net/netstat or /proc/net/snmp: no networking here") from None
        try:
            text = self._fs.read_text(SNMP6)
        except FileNotFoundError:  # IPv6 disabled
            text = ""
        stats.update((s.key, s) for s in parse_snmp6(text))
        families = self._families
        for key, stat in stats.items():
            family = families[key] if key in families else self._family(key, stat)
            if family is not None:
                batch.gauge(family, stat.value)

    def _family(self, key: str, stat: NetStat) -> FamilyDesc | None:
        if key not in self._families:
            name = f"node_netstat_{key}"
            wanted = self._fields.search(key) is not None and _NAME_RE.match(name) is not None
            self._families[key] = FamilyDesc(
                name, MetricType.GAUGE, f"Statistic {stat.protocol}{stat.field}.") if wanted else None
        return self._families[key]


COLLECTOR = CollectorInfo(name="netstat", factory=NetstatCollector, on_scrape=True, inline=True,
                          options={"fields": fields_pattern})
