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


class NetstatCollector:
    name = "netstat"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        fields = ctx.options.get("fields")
        self._fields = fields if isinstance(fields, re.Pattern) else fields_pattern(fields or DEFAULT_FIELDS)
        self._families: dict[str, FamilyDesc | None] = {}  # key -> family; None: filtered out

    def collect(self, batch: Batch) -> None:
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


COLLECTOR = CollectorInfo(name="netstat", factory=NetstatCollector, on_scrape=True,
                          options={"fields": fields_pattern})
