"""The desired and the live network state, as frozen values (re-exported
by :mod:`agent.network.model`, where the domain code imports them from; they
live here, in the hardware layer, because the backend that reads and changes
the kernel speaks them, as ``ipmi_model`` and ``nvml_model`` do).

One model serves both directions: a config parsed from nmstate YAML (or
converted from the API's protobuf) is a :class:`NetworkState`, and so is
what :class:`~agent.backends.netconf.NetconfBackend` reads from the kernel.
The planner compares the two; ``None`` in a desired field means "whatever
the kernel has" (not managed), never "reset to a default".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Kinds a config may declare.  "ethernet" is an existing device that is only
# configured (MTU, MAC, state, addresses, controller), never created or removed.
KINDS = ("ethernet", "bond", "bridge", "vlan", "vxlan", "veth", "dummy", "macvlan")
# Kinds that only appear in the live state: the agent reports them, never creates them.
LIVE_ONLY_KINDS = ("loopback", "unknown")
# Kinds that exist already and are configured, never created or removed
# (`show` prints loopback and unknown kinds such as tun; applying that output works).
CONFIGURE_ONLY_KINDS = ("ethernet",) + LIVE_ONLY_KINDS
STATES = ("up", "down", "absent")
BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
              "balance-tlb", "balance-alb")
LACP_RATES = ("slow", "fast")
XMIT_HASH_POLICIES = ("layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac")
VLAN_PROTOCOLS = ("802.1q", "802.1ad")
MACVLAN_MODES = ("private", "vepa", "bridge", "passthru", "source")
MAIN_TABLE = 254


@dataclass(frozen=True)
class Address:
    ip: str
    prefix_length: int


@dataclass(frozen=True)
class Bond:
    mode: str = "balance-rr"
    ports: tuple[str, ...] = ()
    miimon: int | None = None
    lacp_rate: str | None = None          # 802.3ad only
    xmit_hash_policy: str | None = None


@dataclass(frozen=True)
class BridgePort:
    """A bridge port's VLANs when the bridge filters VLANs: ``vlans`` are the
    tagged VIDs, ``pvid`` the untagged/native one (None: the kernel's default
    is left alone)."""
    name: str
    vlans: tuple[int, ...] = ()
    pvid: int | None = None
    vlans_managed: bool = False       # False: the port's VLAN table is left as the kernel has it


@dataclass(frozen=True)
class Bridge:
    stp: bool | None = None
    vlan_filtering: bool | None = None
    ports: tuple[BridgePort, ...] = ()


@dataclass(frozen=True)
class Vlan:
    base_iface: str
    id: int
    protocol: str = "802.1q"


@dataclass(frozen=True)
class Vxlan:
    id: int
    base_iface: str | None = None
    local: str | None = None
    remote: str | None = None         # unicast peer
    group: str | None = None          # multicast group (exclusive with remote)
    destination_port: int = 4789
    learning: bool = True


@dataclass(frozen=True)
class Veth:
    peer: str


@dataclass(frozen=True)
class Macvlan:
    base_iface: str
    mode: str = "bridge"


@dataclass(frozen=True)
class Interface:
    name: str
    type: str = "ethernet"
    state: str = "up"
    mtu: int | None = None
    mac: str | None = None
    ipv4: tuple[Address, ...] = ()
    ipv6: tuple[Address, ...] = ()
    protected: bool = False
    bond: Bond | None = None
    bridge: Bridge | None = None
    vlan: Vlan | None = None
    vxlan: Vxlan | None = None
    veth: Veth | None = None
    macvlan: Macvlan | None = None
    controller: str | None = None      # the bond/bridge this is a port of
    # False: the config did not name this family, so its addresses are left as
    # they are (nmstate's meaning of an omitted ipv4/ipv6 section).
    ipv4_managed: bool = True
    ipv6_managed: bool = True
    index: int | None = None           # live only: the ifindex (a rollback recreates with the same one)

    def base(self) -> str | None:
        """The interface this one is stacked on, if any."""
        for opt in (self.vlan, self.macvlan, self.vxlan):
            if opt is not None and opt.base_iface:
                return opt.base_iface
        return None


@dataclass(frozen=True)
class Route:
    destination: str                   # CIDR; "0.0.0.0/0" / "::/0" for the default route
    gateway: str | None = None
    next_hop_interface: str | None = None
    metric: int | None = None          # None: the kernel's default (0 for IPv4, 1024 for IPv6)
    table: int | None = None           # None: main (254)
    state: str = "present"             # "absent": remove this route if it is there
    protocol: int | None = None        # live only: rtm_protocol, restored by a rollback

    def key(self) -> tuple:
        """What identifies the route in the kernel (defaults filled in)."""
        v6 = ":" in self.destination
        metric = self.metric if self.metric is not None else (1024 if v6 else 0)
        return (self.destination, self.gateway, self.next_hop_interface, metric,
                self.table if self.table is not None else MAIN_TABLE)


@dataclass(frozen=True)
class NetworkState:
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()

    def by_name(self) -> dict[str, Interface]:
        return {i.name: i for i in self.interfaces}


class StepFailed(Exception):
    """Step number ``index`` of a backend's ``execute_all(steps)`` failed
    with ``cause`` (the steps before it ran; the engine rolls back)."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(index, cause)
        self.index, self.cause = index, cause


def replace(obj, **changes):
    """``dataclasses.replace`` under a short name."""
    return dataclasses.replace(obj, **changes)


def to_dict(state: NetworkState) -> dict:
    """Plain JSON-able form (journal, snapshots)."""
    return dataclasses.asdict(state)


def from_dict(data: dict) -> NetworkState:
    """Inverse of :func:`to_dict` (trusted input: our own journal)."""
    def iface(d: dict) -> Interface:
        d = dict(d)
        d["ipv4"] = tuple(Address(**a) for a in d.get("ipv4", ()))
        d["ipv6"] = tuple(Address(**a) for a in d.get("ipv6", ()))
        if d.get("bond"):
            d["bond"] = Bond(**{**d["bond"], "ports": tuple(d["bond"]["ports"])})
        if d.get("bridge"):
            b = d["bridge"]
            d["bridge"] = Bridge(stp=b["stp"], vlan_filtering=b["vlan_filtering"],
                                 ports=tuple(BridgePort(**{**p, "vlans": tuple(p["vlans"])})
                                             for p in b["ports"]))
        for key, cls in (("vlan", Vlan), ("vxlan", Vxlan), ("veth", Veth), ("macvlan", Macvlan)):
            if d.get(key):
                d[key] = cls(**d[key])
        return Interface(**d)
    return NetworkState(interfaces=tuple(iface(i) for i in data.get("interfaces", ())),
                        routes=tuple(Route(**r) for r in data.get("routes", ())))


