"""The rest of node_exporter's netclass families: what the netdev collector
does not already serve of ``/sys/class/net/<iface>/``.

netdev serves ``node_network_up``, ``_carrier``, ``_carrier_changes_total``,
``_mtu_bytes``, ``_speed_bytes``, ``_iface_id`` and ``_info``; this collector
serves the other twelve, from the same sources the kernel fills those sysfs
attributes from:

* the link table (``RTM_NEWLINK``, kept current by a
  :class:`~agent.backends.links.LinkWatcher` per namespace, so nothing is read
  per cycle while no link changes): ``tx_queue_len`` (IFLA_TXQLEN),
  ``flags``, ``type`` (ifi_type), ``iflink`` (IFLA_LINK, the ifindex itself
  when absent), ``link_mode`` (IFLA_LINKMODE), ``netdev_group``
  (IFLA_GROUP), ``carrier_up_count``/``carrier_down_count`` and ``dormant``
  (IFF_DORMANT).  ``flags`` is served as sysfs shows it (``dev->flags``):
  rtnetlink's ``ifi_flags`` less the IFF_RUNNING, IFF_LOWER_UP and IFF_DORMANT
  bits it adds.  ``dormant`` is 0 while the link is down (sysfs refuses to
  answer then).
* sysfs, for what netlink does not carry: ``addr_assign_type``, ``dev_id``
  (hexadecimal) and ``name_assign_type`` (absent while unknown).  Only for the
  agent's own namespace (sysfs shows the namespace that mounted it), read
  through :class:`~agent.backends.hostfs.HostFS` when a link first appears or
  changes, and only when sysfs's ``ifindex`` matches the link's.

Labels ``device`` and ``netns`` (empty for the agent's own), as netdev's.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, NamedTuple

from agent.backends.hostfs import HostFS
from agent.config_values import netns_list
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.model import Batch, FamilyDesc, MetricType, PreparedLayout

if TYPE_CHECKING:  # the link watcher: loaded at the first run, not at start
    from agent.backends.links import Link, LinkWatcher

C, G = MetricType.COUNTER, MetricType.GAUGE
LABELS = ("device", "netns")
IFF_RUNNING, IFF_LOWER_UP, IFF_DORMANT = 0x40, 0x10000, 0x20000


def _g(name: str, help_: str) -> FamilyDesc:
    return FamilyDesc(f"node_network_{name}", G, help_, "", LABELS)


TXQLEN = _g("transmit_queue_length", "Transmit queue length (tx_queue_len)")
FLAGS = _g("flags", "Interface flags as /sys/class/net/<iface>/flags shows them (IFF_UP 0x1 ...)")
PROTOCOL_TYPE = _g("protocol_type", "Hardware type, ARPHRD_* (1 ethernet, 32 infiniband, 772 loopback)")
IFACE_LINK = _g("iface_link", "Interface index of the lower device (the interface's own when none)")
LINK_MODE = _g("iface_link_mode", "Link mode (0 default, 1 dormant)")
GROUP = _g("net_dev_group", "Network device group")
DORMANT = _g("dormant", "1 if the interface is dormant (waiting for an external event, e.g. 802.1X)")
ADDR_ASSIGN = _g("address_assign_type", "How the MAC address was assigned (0 permanent, 1 random, "
                 "2 stolen, 3 set)")
DEVICE_ID = _g("device_id", "Device id, telling apart interfaces that share a MAC address (dev_id)")
NAME_ASSIGN = _g("name_assign_type", "How the name was assigned (1 enumerated, 2 predictable, 3 user, "
                 "4 renamed)")
UP_CHANGES = FamilyDesc("node_network_carrier_up_changes_total", C,
                        "Times the carrier came up since the interface was created", "", LABELS)
DOWN_CHANGES = FamilyDesc("node_network_carrier_down_changes_total", C,
                          "Times the carrier went down since the interface was created", "", LABELS)


class SysfsAttrs(NamedTuple):
    """The netclass attributes only sysfs has; None where absent."""

    addr_assign_type: int | None
    dev_id: int | None
    name_assign_type: int | None


def read_sysfs_attrs(fs: HostFS, link: Link) -> SysfsAttrs | None:
    """``/sys/class/net/<name>/``'s, or None when that directory is not this
    link (another namespace's interface of the same name, or gone)."""
    base = f"sys/class/net/{link.name}"
    if not link.name or "/" in link.name or fs.read_int(f"{base}/ifindex") != link.ifindex:
        return None
    return SysfsAttrs(fs.read_int(f"{base}/addr_assign_type"), fs.read_int(f"{base}/dev_id"),
                      fs.read_int(f"{base}/name_assign_type"))


def link_rows(link: Link, netns: str, sysfs: SysfsAttrs | None = None
              ) -> Iterator[tuple[FamilyDesc, tuple[str, str], int]]:
    """Every series of one link: (family, labels, value)."""
    labels = (link.name, netns)
    yield TXQLEN, labels, link.txqlen
    yield FLAGS, labels, link.flags & ~(IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT)
    yield PROTOCOL_TYPE, labels, link.ifi_type
    yield IFACE_LINK, labels, link.iflink or link.ifindex
    yield LINK_MODE, labels, link.link_mode
    yield GROUP, labels, link.group
    yield DORMANT, labels, 1 if link.flags & IFF_DORMANT else 0
    if sysfs is not None:
        for family, value in ((ADDR_ASSIGN, sysfs.addr_assign_type), (DEVICE_ID, sysfs.dev_id),
                              (NAME_ASSIGN, sysfs.name_assign_type)):
            if value is not None:
                yield family, labels, value
    if link.carrier_up_count is not None:
        yield UP_CHANGES, labels, link.carrier_up_count
    if link.carrier_down_count is not None:
        yield DOWN_CHANGES, labels, link.carrier_down_count


@dataclass
class _Namespace:
    name: str
    watcher: LinkWatcher
    generation: int = -1  # of the link table the layouts were built from
    gauges: PreparedLayout = field(default_factory=lambda: PreparedLayout([]))
    gauge_values: array = field(default_factory=lambda: array("d"))
    counters: PreparedLayout = field(default_factory=lambda: PreparedLayout([]))
    counter_values: array = field(default_factory=lambda: array("Q"))
    sysfs: dict[int, tuple[Link, SysfsAttrs | None]] = field(default_factory=dict)  # ifindex -> read for


class NetclassCollector:
    name = "netclass"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._netns = tuple(ctx.options.get("namespaces", ("",)))
        self._spaces: list[_Namespace] = []
        self._closed = False

    def _open(self) -> None:
        from agent.backends.links import LinkWatcher  # what a start does not need

        spaces: list[_Namespace] = []
        try:
            for ns in self._netns:
                space = _Namespace(ns, LinkWatcher(ns or None))
                spaces.append(space)
                space.watcher.start()
        except BaseException:
            for space in spaces:  # all or nothing: the next run tries every namespace again
                space.watcher.close()
            raise
        self._spaces = spaces

    def collect(self, batch: Batch) -> None:
        if self._closed:  # a run still in flight when the daemon closed us
            raise RuntimeError("netclass collector is closed")
        if not self._spaces:
            self._open()
        for space in self._spaces:
            generation = space.watcher.generation  # before links(): a change in between
            if generation != space.generation:     # only causes one more rebuild
                self._rebuild(space, space.watcher.links())
                space.generation = generation
            batch.add_prepared(space.gauges, value=space.gauge_values)
            batch.add_prepared(space.counters, raw=space.counter_values)

    def _rebuild(self, space: _Namespace, links: dict[int, Link]) -> None:
        gauges: list[tuple[FamilyDesc, tuple[str, str]]] = []
        counters: list[tuple[FamilyDesc, tuple[str, str]]] = []
        gauge_values, counter_values = array("d"), array("Q")
        for link in sorted(links.values(), key=lambda lk: lk.ifindex):
            for family, labels, value in link_rows(link, space.name, self._sysfs(space, link)):
                if family.type is C:
                    counters.append((family, labels))
                    counter_values.append(value & 0xFFFFFFFFFFFFFFFF)
                else:
                    gauges.append((family, labels))
                    gauge_values.append(float(value))
        for gone in space.sysfs.keys() - links.keys():
            del space.sysfs[gone]
        space.gauges, space.gauge_values = PreparedLayout(gauges), gauge_values
        space.counters, space.counter_values = PreparedLayout(counters), counter_values

    def _sysfs(self, space: _Namespace, link: Link) -> SysfsAttrs | None:
        if space.name:  # sysfs shows the agent's namespace only
            return None
        cached = space.sysfs.get(link.ifindex)
        if cached is None or cached[0] != link:  # new or changed (address, name...): read again
            cached = space.sysfs[link.ifindex] = (link, read_sysfs_attrs(self._fs, link))
        return cached[1]

    def close(self) -> None:
        self._closed = True
        for space in self._spaces:
            space.watcher.close(timeout=1.0)
        self._spaces = []


# Link attributes change rarely and the layouts are rebuilt only when one does,
# so a run costs next to nothing: node_exporter's default scrape cadence.
# The first run dumps every link (1.8 s at 4096 links); later runs are incremental.
COLLECTOR = CollectorInfo(name="netclass", factory=NetclassCollector, on_scrape=True, timeout=10.0,
                          options={"namespaces": netns_list})
