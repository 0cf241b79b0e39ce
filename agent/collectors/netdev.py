"""Every counter of every interface, every second, at hypervisor scale, and
the link state of each (node_exporter's netdev and netclass in one).

Per namespace: counters come from one raw ``RTM_GETSTATS`` dump parsed by the
``parse_stats_dump`` kernel straight into arrays, and go to the store as a
prepared layout (no Python work per series while no link comes or goes).
Link attributes (name, kind, MTU, speed, master...) come from a
:class:`~agent.backends.links.LinkWatcher` kept current by link
notifications, not re-read every cycle; its changes are published as
``link.*`` events.

Names follow node_exporter (``node_network_receive_bytes_total{device}``,
with its classic short names for the error counters: ``_errs``, ``_drop``,
``_fifo``, ``_frame``, ``_colls``, ``_carrier``), plus a ``netns`` label that
is empty for the agent's own namespace (so Prometheus drops it).  A deleted
interface keeps its last values for ``grace`` seconds, then its series leave.
"""
from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from agent.backends.netlink import StatsDumper
from agent.config_values import duration, netns_list
from agent.core import STATS_FIELDS, parse_stats_dump
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.events import Severity
from agent.telemetry.model import Batch, FamilyDesc, MetricType, PreparedLayout

if TYPE_CHECKING:  # the link watcher: loaded at the first run, not at start
    from agent.backends.links import Link, LinkChange, LinkWatcher

C, G = MetricType.COUNTER, MetricType.GAUGE
LABELS = ("device", "netns")
_NAMES = {  # rtnl_link_stats64 field -> exported name (node_exporter's where it has one)
    "rx_packets": "node_network_receive_packets_total",
    "tx_packets": "node_network_transmit_packets_total",
    "rx_bytes": "node_network_receive_bytes_total",
    "tx_bytes": "node_network_transmit_bytes_total",
    "rx_errors": "node_network_receive_errs_total",
    "tx_errors": "node_network_transmit_errs_total",
    "rx_dropped": "node_network_receive_drop_total",
    "tx_dropped": "node_network_transmit_drop_total",
    "multicast": "node_network_receive_multicast_total",
    "collisions": "node_network_transmit_colls_total",
    "rx_length_errors": "node_network_receive_length_errors_total",
    "rx_over_errors": "node_network_receive_over_errors_total",
    "rx_crc_errors": "node_network_receive_crc_errors_total",
    "rx_frame_errors": "node_network_receive_frame_total",
    "rx_fifo_errors": "node_network_receive_fifo_total",
    "rx_missed_errors": "node_network_receive_missed_errors_total",
    "tx_aborted_errors": "node_network_transmit_aborted_errors_total",
    "tx_carrier_errors": "node_network_transmit_carrier_total",
    "tx_fifo_errors": "node_network_transmit_fifo_total",
    "tx_heartbeat_errors": "node_network_transmit_heartbeat_errors_total",
    "tx_window_errors": "node_network_transmit_window_errors_total",
    "rx_compressed": "node_network_receive_compressed_total",
    "tx_compressed": "node_network_transmit_compressed_total",
    "rx_nohandler": "node_network_receive_nohandler_total",
    "rx_otherhost_dropped": "hostagent_network_receive_otherhost_dropped_total",
}
COUNTERS = tuple(FamilyDesc(_NAMES[f], C, f"Interface statistic {f} (rtnl_link_stats64)",
                            "bytes" if f.endswith("bytes") else "", LABELS) for f in STATS_FIELDS)
UP = FamilyDesc("node_network_up", G, "1 if the operational state is up", "", LABELS)
CARRIER = FamilyDesc("node_network_carrier", G, "1 if the link has carrier (0 while administratively down)",
                     "", LABELS)
CARRIER_CHANGES = FamilyDesc("node_network_carrier_changes_total", C,
                             "Carrier changes (link flaps) since the interface was created", "", LABELS)
MTU = FamilyDesc("node_network_mtu_bytes", G, "MTU of the interface", "bytes", LABELS)
SPEED = FamilyDesc("node_network_speed_bytes", G, "Link speed (physical NICs)", "bytes", LABELS)
IFINDEX = FamilyDesc("node_network_iface_id", G, "Interface index", "", LABELS)
INFO_LABELS = ("device", "netns", "address", "operstate", "duplex", "ifalias", "kind", "master",
               "driver", "bus_address", "vlan_id", "vxlan_vni")
INFO = FamilyDesc("node_network_info", G, "Non-numeric data about the interface, value is always 1",
                  "", INFO_LABELS)
_SEVERITY = {"added": Severity.INFO, "removed": Severity.INFO, "up": Severity.INFO,
             "down": Severity.WARNING, "carrier_lost": Severity.WARNING,
             "carrier_regained": Severity.INFO, "flapping": Severity.WARNING}


def _opt(v) -> str:
    return "" if v is None else str(v)


def state_rows(link: Link, netns: str) -> list[tuple[FamilyDesc, tuple[str, ...], float]]:
    labels = (link.name, netns)
    rows = [(UP, labels, 1.0 if link.operstate == "up" else 0.0),
            # IFLA_CARRIER stays 1 on a downed lo, dummy or ifb; sysfs refuses to
            # answer while the link is down (EINVAL), so down means no carrier.
            (CARRIER, labels, 1.0 if link.carrier and link.admin_up else 0.0),
            (MTU, labels, float(link.mtu)),
            (IFINDEX, labels, float(link.ifindex)),
            (INFO, (link.name, netns, link.mac or "", link.operstate, _opt(link.duplex),
                    _opt(link.ifalias), link.kind, link.master_name or "", _opt(link.driver),
                    _opt(link.bus_address), _opt(link.vlan_id), _opt(link.vxlan_vni)), 1.0)]
    if link.speed_mbps:
        rows.append((SPEED, labels, link.speed_mbps * 125000.0))
    return rows


@dataclass
class _Namespace:
    """One watched namespace: its dumper, its link table, cached layouts."""

    name: str
    dumper: StatsDumper
    watcher: LinkWatcher
    key: tuple = ()  # (link generation, ifindex bytes) the layouts were built for
    stats: PreparedLayout | None = None
    keep_rows: array | None = None  # dump rows to keep, None when all of them
    state: PreparedLayout | None = None
    state_values: array = field(default_factory=lambda: array("d"))
    changes: PreparedLayout | None = None  # carrier_changes_total counters
    change_values: array = field(default_factory=lambda: array("Q"))
    names: list[str] = field(default_factory=list)  # interfaces of the stats layout, in order
    last: array = field(default_factory=lambda: array("Q"))  # their counters, last cycle
    ifindex_of: dict[str, int] = field(default_factory=dict)
    gone: dict[str, tuple[float, int, array]] = field(default_factory=dict)  # name -> since, ifindex, counters
    graced: PreparedLayout | None = None
    graced_values: array = field(default_factory=lambda: array("Q"))
    graced_key: tuple = ()


class NetdevCollector:
    name = "netdev"

    def __init__(self, ctx: CollectorContext, clock: Callable[[], float] = time.monotonic) -> None:
        self._publish = ctx.publish
        self._netns = tuple(ctx.options.get("namespaces", ("",)))
        self._grace = float(ctx.options.get("grace", 300.0))
        self._clock = clock
        self._spaces: list[_Namespace] = []
        self._closed = False

    def _open(self) -> None:
        from agent.backends.links import LinkWatcher  # what a start does not need

        spaces: list[_Namespace] = []
        try:
            for ns in self._netns:
                watcher = LinkWatcher(ns or None, on_change=lambda c, ns=ns: self._changed(ns, c))
                spaces.append(_Namespace(ns, StatsDumper(ns or None), watcher))
                watcher.start()
        except BaseException:
            for space in spaces:  # all or nothing: the next run tries every namespace again
                space.watcher.close()
                space.dumper.close()
            raise
        self._spaces = spaces

    def _changed(self, netns: str, change: LinkChange) -> None:
        link = change.link
        where = f" in netns {netns}" if netns else ""
        self._publish(f"link.{change.kind}", _SEVERITY.get(change.kind, Severity.INFO), self.name,
                      f"{link.name}{where}: {change.kind.replace('_', ' ')}",
                      device=link.name, netns=netns, link_kind=link.kind)

    def collect(self, batch: Batch) -> None:
        if self._closed:  # a run still in flight when the daemon closed us
            raise RuntimeError("netdev collector is closed")
        if not self._spaces:
            self._open()
        for space in self._spaces:
            self._collect(space, batch)

    def _collect(self, space: _Namespace, batch: Batch) -> None:
        ifindex, counters = parse_stats_dump(space.dumper.dump())
        generation = space.watcher.generation  # before links(): a change in between
        links = space.watcher.links()          # only causes one more relayout
        key = (generation, ifindex.tobytes())
        if key != space.key:
            self._relayout(space, ifindex, links)
            space.key = key
        width = len(STATS_FIELDS)
        if space.keep_rows is not None:
            kept = array("Q")
            for row in space.keep_rows:
                kept.extend(counters[row * width:(row + 1) * width])
            counters = kept
        space.last = counters
        batch.add_prepared(space.stats, raw=counters)
        batch.add_prepared(space.state, value=space.state_values)
        batch.add_prepared(space.changes, raw=space.change_values)
        self._graced(space, batch)

    def _relayout(self, space: _Namespace, ifindex: array, links: dict[int, Link]) -> None:
        """Links or the dump's interfaces changed: rebuild the layouts."""
        rows = [r for r, idx in enumerate(ifindex) if idx in links]
        space.keep_rows = None if len(rows) == len(ifindex) else array("q", rows)
        names = [links[ifindex[r]].name for r in rows]
        current = dict(zip(names, (ifindex[r] for r in rows)))
        width, now = len(STATS_FIELDS), self._clock()
        for i, name in enumerate(space.names):  # deleted: keep last values for the grace period
            if name not in current and i * width < len(space.last):
                space.gone[name] = (now, space.ifindex_of.get(name, 0),
                                    space.last[i * width:(i + 1) * width])
        known = {**{n: idx for n, (_, idx, _) in space.gone.items()}, **space.ifindex_of}
        # Same name, new ifindex: recreated, so its counters restarted.
        fresh = [i for i, n in enumerate(names) if known.get(n, current[n]) != current[n]]
        for name in names:
            space.gone.pop(name, None)
        space.names, space.ifindex_of = names, current
        # One labels tuple per interface, shared by its 31 series: at 4096
        # interfaces a tuple per series held 7 MB more in the store's keys.
        space.stats = PreparedLayout([(fam, labels) for labels in ((name, space.name) for name in names)
                                      for fam in COUNTERS],
                                     fresh=tuple(i * width + f for i in fresh for f in range(width)))
        state = [row for r in rows for row in state_rows(links[ifindex[r]], space.name)]
        space.state = PreparedLayout([(fam, labels) for fam, labels, _ in state])
        space.state_values = array("d", (v for _, _, v in state))
        space.changes = PreparedLayout([(CARRIER_CHANGES, (n, space.name)) for n in names])
        space.change_values = array("Q", (links[ifindex[r]].carrier_changes for r in rows))

    def _graced(self, space: _Namespace, batch: Batch) -> None:
        """Deleted interfaces' last counters, until the grace period is over."""
        now = self._clock()
        for name in [n for n, (since, _, _) in space.gone.items() if now - since > self._grace]:
            del space.gone[name]
        key = tuple(sorted(space.gone))
        if key != space.graced_key:
            space.graced_key = key
            space.graced = PreparedLayout([(fam, (n, space.name)) for n in key for fam in COUNTERS])
            space.graced_values = array("Q")
            for n in key:
                space.graced_values.extend(space.gone[n][2])
        if key:
            batch.add_prepared(space.graced, raw=space.graced_values)

    def close(self) -> None:
        self._closed = True
        for space in self._spaces:
            space.watcher.close(timeout=1.0)  # stop() must finish within systemd's patience
            space.dumper.close()
        self._spaces = []


# Every counter of every interface every second; a shorter history than
# telemetry.retention, as 25 counters per interface every second would take
# 0.9 GB for 4096 interfaces at 15 min.
COLLECTOR = CollectorInfo(name="netdev", factory=NetdevCollector, on_scrape=True, interval=1.0,
                          retention=120.0,
                          options={"namespaces": netns_list, "grace": duration})
