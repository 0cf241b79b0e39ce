"""The values of the link table and the pure functions that make them.

:func:`parse_link` turns one ``RTM_NEWLINK`` (decoded by pyroute2 or by
:mod:`agent.backends.linkmsg`, which give the same shape) into a
:class:`Link`; :func:`with_sysfs` adds what only sysfs knows for the host's
physical NICs; :func:`change_kinds` and :class:`FlapDetector` say what a new
version of a link means.  :mod:`agent.backends.links` keeps the table current
and re-exports these names; import them from there.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from agent.backends.hostfs import HostFS

ARPHRD_LOOPBACK = 772
IFF_UP = 0x1
TUN_TYPES = {1: "tun", 2: "tap"}  # IFLA_TUN_TYPE: IFF_TUN, IFF_TAP
VF_LINK_STATES = {0: "auto", 1: "enable", 2: "disable"}
CHANGE_KINDS = ("added", "removed", "up", "down", "carrier_lost", "carrier_regained", "flapping")


@dataclass(frozen=True)
class VF:
    """One SR-IOV virtual function of a PF (``IFLA_VF_INFO``); counters as of
    the last dump or re-ask of the PF, ``None`` where the driver gives none."""

    vf: int
    mac: str = ""
    vlan: int = 0
    qos: int = 0
    link_state: str = "auto"
    spoofchk: bool | None = None
    trust: bool | None = None
    rx_packets: int | None = None
    tx_packets: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None


@dataclass(frozen=True)
class Link:
    """One interface.  ``kind``: "physical", "loopback", the ``IFLA_INFO_KIND``
    (veth, bridge, bond, vlan, vxlan, macvlan...; "tap"/"tun" for tun devices)
    or "virtual".  speed, duplex, driver and NUMA node come from sysfs, so only
    for the host's physical NICs; ``None`` elsewhere and when unknown."""

    ifindex: int
    name: str
    kind: str = "virtual"
    mac: str = ""
    mtu: int = 0
    operstate: str = "unknown"
    admin_up: bool = False  # IFF_UP
    carrier: bool = False
    carrier_changes: int = 0
    master: int = 0
    master_name: str = ""
    vlan_id: int | None = None
    vxlan_vni: int | None = None
    speed_mbps: int | None = None
    duplex: str | None = None
    driver: str | None = None
    bus_address: str | None = None
    numa_node: int | None = None
    vfs: tuple[VF, ...] = ()
    ifalias: str = ""
    # The rest of what ``ip -d link`` shows (node_exporter's netclass reads
    # the same values from /sys/class/net/<iface>/).
    flags: int = 0  # ifi_flags (dev_get_flags: IFF_RUNNING, IFF_LOWER_UP, IFF_DORMANT included)
    ifi_type: int = 0  # ARPHRD_* (1 ether, 32 infiniband, 772 loopback)
    txqlen: int = 0
    iflink: int = 0  # IFLA_LINK: ifindex of the lower device (a veth's peer); 0 when none
    link_mode: int = 0  # IFLA_LINKMODE: 0 default, 1 dormant
    group: int = 0  # IFLA_GROUP
    carrier_up_count: int | None = None  # IFLA_CARRIER_UP_COUNT (Linux 4.16+)
    carrier_down_count: int | None = None


@dataclass(frozen=True)
class LinkChange:
    kind: str  # one of CHANGE_KINDS
    link: Link  # the link after the change; as it was last known for "removed"
    netns: str | None
    time: float  # Unix seconds


class FlapDetector:
    """``threshold`` carrier changes within ``window`` seconds make a link flap.

    :meth:`observe` says so once; it says so again only after the link has
    been stable for a whole window.
    """

    def __init__(self, threshold: int = 4, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or window <= 0:
            raise ValueError("threshold must be >= 1 and window > 0")
        self.threshold, self.window, self._clock = threshold, window, clock
        self._times: dict[int, deque[float]] = {}
        self._flapping: set[int] = set()

    def observe(self, ifindex: int, t: float | None = None) -> bool:
        """Record one carrier change; True when it makes the link start flapping."""
        t = self._clock() if t is None else t
        times = self._times.setdefault(ifindex, deque(maxlen=self.threshold))
        if ifindex in self._flapping and times and t - times[-1] >= self.window:
            self._flapping.discard(ifindex)  # quiet for a whole window
        times.append(t)
        if (ifindex not in self._flapping and len(times) == self.threshold
                and t - times[0] <= self.window):
            self._flapping.add(ifindex)
            return True
        return False

    def forget(self, ifindex: int) -> None:
        self._times.pop(ifindex, None)
        self._flapping.discard(ifindex)


def change_kinds(old: Link | None, new: Link | None) -> list[str]:
    """What changed between two versions of one link (flapping aside).

    An admin state change is reported as up/down only; carrier changes are
    reported while the link is administratively up.
    """
    if old is None or new is None:
        return ["added"] if new is not None else ["removed"] if old is not None else []
    if old.admin_up != new.admin_up:
        return ["up" if new.admin_up else "down"]
    if new.admin_up and old.carrier != new.carrier:
        return ["carrier_regained" if new.carrier else "carrier_lost"]
    return []


def _vf(info) -> VF:
    def field(attr: str, key: str):
        value = info.get_attr(attr)
        return None if value is None else value.get(key)
    stats = info.get_attr("IFLA_VF_STATS")
    stat = (lambda name: stats.get_attr(name)) if stats is not None else (lambda name: None)
    spoof, trust = field("IFLA_VF_SPOOFCHK", "spoofchk"), field("IFLA_VF_TRUST", "trust")
    return VF(
        vf=field("IFLA_VF_MAC", "vf") or 0, mac=field("IFLA_VF_MAC", "mac") or "",
        vlan=field("IFLA_VF_VLAN", "vlan") or 0, qos=field("IFLA_VF_VLAN", "qos") or 0,
        link_state=VF_LINK_STATES.get(field("IFLA_VF_LINK_STATE", "link_state") or 0, "auto"),
        spoofchk=None if spoof is None or spoof > 1 else bool(spoof),  # -1: not supported
        trust=None if trust is None or trust > 1 else bool(trust),
        rx_packets=stat("IFLA_VF_STATS_RX_PACKETS"), tx_packets=stat("IFLA_VF_STATS_TX_PACKETS"),
        rx_bytes=stat("IFLA_VF_STATS_RX_BYTES"), tx_bytes=stat("IFLA_VF_STATS_TX_BYTES"),
    )


def attrs_of(msg) -> Callable[[str], object]:
    """``get(name)``: the first NLA of that name, decoded, or None.

    One pass over the NLAs: pyroute2's ``get_attr`` scans them all per call,
    which made a 4000-link dump take seconds.
    """
    slots: dict[str, object] = {}
    for slot in msg["attrs"]:
        slots.setdefault(slot.name, slot)
    return lambda name: slots[name].value if name in slots else None  # type: ignore[attr-defined]


def parse_link(msg: Any, links: Mapping[int, Link] | None = None) -> Link:
    """A :class:`Link` from one ``RTM_NEWLINK``, netlink facts only.

    ``links`` names the master. Without ``IFLA_LINKINFO``, a link with a parent
    device (``IFLA_PARENT_DEV_NAME``, Linux 5.16+) is "physical".
    """
    attr = attrs_of(msg)
    kind, vlan_id, vni = "virtual", None, None
    info = attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    get = data.get_attr if data is not None and hasattr(data, "get_attr") else (lambda _: None)
    parent = attr("IFLA_PARENT_DEV_NAME")
    if info is not None and info.get_attr("IFLA_INFO_KIND"):
        kind = info.get_attr("IFLA_INFO_KIND")
        if kind == "tun":
            kind = TUN_TYPES.get(get("IFLA_TUN_TYPE"), "tun")
        vlan_id = get("IFLA_VLAN_ID") if kind == "vlan" else None
        vni = get("IFLA_VXLAN_ID") if kind == "vxlan" else None
    elif msg["ifi_type"] == ARPHRD_LOOPBACK:
        kind = "loopback"
    elif parent:
        kind = "physical"
    master = attr("IFLA_MASTER") or 0
    vfinfo = attr("IFLA_VFINFO_LIST")
    return Link(
        ifindex=msg["index"], name=attr("IFLA_IFNAME") or "", kind=kind,
        mac=attr("IFLA_ADDRESS") or "", mtu=attr("IFLA_MTU") or 0,
        operstate=(attr("IFLA_OPERSTATE") or "unknown").lower(),
        admin_up=bool(msg["flags"] & IFF_UP), carrier=bool(attr("IFLA_CARRIER")),
        carrier_changes=attr("IFLA_CARRIER_CHANGES") or 0,
        master=master, master_name=(links or {}).get(master, Link(0, "")).name if master else "",
        vlan_id=vlan_id, vxlan_vni=vni, bus_address=parent or None,
        vfs=tuple(_vf(i) for i in vfinfo.get_attrs("IFLA_VF_INFO")) if vfinfo is not None else (),
        ifalias=attr("IFLA_IFALIAS") or "",
        flags=msg["flags"], ifi_type=msg["ifi_type"], txqlen=attr("IFLA_TXQLEN") or 0,
        iflink=attr("IFLA_LINK") or 0, link_mode=attr("IFLA_LINKMODE") or 0,
        group=attr("IFLA_GROUP") or 0, carrier_up_count=attr("IFLA_CARRIER_UP_COUNT"),
        carrier_down_count=attr("IFLA_CARRIER_DOWN_COUNT"),
    )


def with_sysfs(link: Link, sysfs: HostFS) -> Link:
    """Add what only sysfs knows (speed, duplex, driver, NUMA node) to a host link.

    ``sysfs`` is rooted at ``/sys``; it shows the namespace that mounted it,
    so this is for the host's links only.
    """
    base = f"class/net/{link.name}"
    if link.kind not in ("virtual", "physical") or not link.name or not sysfs.exists(f"{base}/device"):
        return link
    speed = sysfs.read_int(f"{base}/speed")
    duplex = sysfs.read_value(f"{base}/duplex")
    numa = sysfs.read_int(f"{base}/device/numa_node")
    return dataclasses.replace(
        link, kind="physical", speed_mbps=speed if speed is not None and speed > 0 else None,
        duplex=duplex if duplex in ("full", "half") else None,
        driver=_link_name(sysfs, f"{base}/device/driver"),
        bus_address=link.bus_address or _link_name(sysfs, f"{base}/device"),
        numa_node=numa if numa is not None and numa >= 0 else None)


def _link_name(fs: HostFS, rel: str) -> str | None:
    try:
        return os.path.basename(os.readlink(fs.path(rel)))
    except OSError:
        return None
