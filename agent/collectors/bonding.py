"""Bonding (link aggregation) members per bond, as node_exporter's bonding
collector serves them.

* ``/sys/class/net/bonding_masters``: the bonds, space separated (the file
  exists once the ``bonding`` module is loaded, empty without bonds).
* ``/sys/class/net/<bond>/bonding/slaves``: the bond's members, space separated.
* ``/sys/class/net/<bond>/lower_<member>/bonding_slave/mii_status``: ``up``
  or ``down`` (``going down``, ``going back`` while the link monitor's
  delays run); ``slave_<member>`` on old kernels, or the member's own
  ``/sys/class/net/<member>/bonding_slave/``.

``node_bonding_slaves{master}`` counts the members and
``node_bonding_active{master}`` those whose MII status is ``up``.  No bonds
(or no bonding module): no data.  sysfs shows the network namespace that
mounted it.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
NET = "sys/class/net"
SLAVES = FamilyDesc("node_bonding_slaves", G, "Number of configured slaves per bonding interface.",
                    "", ("master",))
ACTIVE = FamilyDesc("node_bonding_active", G, "Number of active slaves per bonding interface.",
                    "", ("master",))


class Bond(NamedTuple):
    master: str
    slaves: int
    active: int


def parse_names(text: str) -> list[str]:
    """``bonding_masters`` or ``bonding/slaves``: space-separated interface names."""
    return text.split()


def bond_status(master: str, mii: dict[str, str | None]) -> Bond:
    """``mii``: member -> its ``mii_status`` (None when unreadable, e.g. the
    member left between two reads: counted, not active)."""
    return Bond(master, len(mii), sum(1 for status in mii.values() if status == "up"))


def _mii_status(fs: HostFS, master: str, member: str) -> str | None:
    for rel in (f"{NET}/{master}/lower_{member}", f"{NET}/{master}/slave_{member}", f"{NET}/{member}"):
        status = fs.read_value(f"{rel}/bonding_slave/mii_status")
        if status is not None:
            return status
    return None


class BondingCollector:
    name = "bonding"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        masters = parse_names(self._fs.read_value(f"{NET}/bonding_masters", "") or "")
        if not masters:
            raise NoData("no bonding interfaces")
        for master in masters:
            try:
                members = parse_names(self._fs.read_text(f"{NET}/{master}/bonding/slaves"))
            except FileNotFoundError:
                continue  # deleted since bonding_masters was read
            bond = bond_status(master, {m: _mii_status(self._fs, master, m) for m in members})
            batch.gauge(SLAVES, bond.slaves, master)
            batch.gauge(ACTIVE, bond.active, master)


COLLECTOR = CollectorInfo(name="bonding", factory=BondingCollector, on_scrape=True)
