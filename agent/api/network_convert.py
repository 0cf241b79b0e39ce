"""``agent.network`` values to ``hostagent.v1`` network messages.

One direction only: the API takes the desired state as nmstate text (parsed
by ``agent.network.nmstate``, so there is one parser and one set of field
paths in errors) and answers the live state typed and as nmstate YAML.
"""
from __future__ import annotations

from agent.api.convert import timestamp
from agent.errors import InvalidArgument
from agent.gen.hostagent.v1 import network_pb2 as pb
from agent.network.model import Interface, NetworkState, Route
from agent.network.nmstate import parse_document, to_text

TYPES = {"ethernet": pb.INTERFACE_TYPE_ETHERNET, "bond": pb.INTERFACE_TYPE_BOND,
         "bridge": pb.INTERFACE_TYPE_BRIDGE, "vlan": pb.INTERFACE_TYPE_VLAN,
         "vxlan": pb.INTERFACE_TYPE_VXLAN, "veth": pb.INTERFACE_TYPE_VETH,
         "dummy": pb.INTERFACE_TYPE_DUMMY, "macvlan": pb.INTERFACE_TYPE_MACVLAN,
         "loopback": pb.INTERFACE_TYPE_LOOPBACK}
STATES = {"up": pb.INTERFACE_STATE_UP, "down": pb.INTERFACE_STATE_DOWN,
          "absent": pb.INTERFACE_STATE_ABSENT}


def in_desired(exc: InvalidArgument) -> InvalidArgument:
    """An error of the nmstate document, naming the field as the request has
    it (``desired.interfaces[0].mtu``)."""
    whole = exc.field in ("", "document")  # the parser's name for the text as a whole
    return InvalidArgument("desired" if whole else f"desired.{exc.field}", exc.message)


def parse_desired(text: str) -> NetworkState:
    """The desired state from a request's nmstate text."""
    try:
        return parse_document(text)
    except InvalidArgument as exc:
        raise in_desired(exc) from None


def _addresses(addrs) -> list[pb.IpAddress]:
    return [pb.IpAddress(ip=a.ip, prefix_length=a.prefix_length) for a in addrs]


def interface_to_proto(i: Interface, managed: bool, protected: bool = False) -> pb.NetworkInterface:
    out = pb.NetworkInterface(name=i.name, type=TYPES.get(i.type, pb.INTERFACE_TYPE_UNSPECIFIED),
                              state=STATES.get(i.state, pb.INTERFACE_STATE_UNSPECIFIED),
                              mtu=i.mtu or 0, mac=i.mac or "", ipv4=_addresses(i.ipv4),
                              ipv6=_addresses(i.ipv6), managed=managed, protected=i.protected or protected,
                              controller=i.controller or "")
    if i.bond is not None:
        b = i.bond
        out.bond.CopyFrom(pb.BondOptions(mode=b.mode, miimon=b.miimon or 0, lacp_rate=b.lacp_rate or "",
                                         xmit_hash_policy=b.xmit_hash_policy or "", ports=b.ports))
    elif i.bridge is not None:
        br = i.bridge
        out.bridge.CopyFrom(pb.BridgeOptions(
            stp=bool(br.stp), vlan_filtering=bool(br.vlan_filtering),
            ports=[pb.BridgePort(name=p.name, pvid=p.pvid or 0, vlans=p.vlans) for p in br.ports]))
    elif i.vlan is not None:
        out.vlan.CopyFrom(pb.VlanOptions(base_iface=i.vlan.base_iface, id=i.vlan.id,
                                         protocol=i.vlan.protocol))
    elif i.vxlan is not None:
        v = i.vxlan
        out.vxlan.CopyFrom(pb.VxlanOptions(id=v.id, local=v.local or "", remote=v.remote or "",
                                           group=v.group or "", destination_port=v.destination_port or 0,
                                           learning=bool(v.learning), base_iface=v.base_iface or ""))
    elif i.veth is not None:
        out.veth.CopyFrom(pb.VethOptions(peer=i.veth.peer))
    elif i.macvlan is not None:
        out.macvlan.CopyFrom(pb.MacvlanOptions(base_iface=i.macvlan.base_iface, mode=i.macvlan.mode))
    return out


def route_to_proto(r: Route) -> pb.NetworkRoute:
    return pb.NetworkRoute(destination=r.destination, next_hop_address=r.gateway or "",
                           next_hop_interface=r.next_hop_interface or "", metric=r.metric or 0,
                           table_id=r.table or 0)


def only_managed(state: NetworkState, managed: frozenset[str]) -> NetworkState:
    """The managed interfaces and the routes through them (or through none)."""
    return NetworkState(interfaces=tuple(i for i in state.interfaces if i.name in managed),
                        routes=tuple(r for r in state.routes
                                     if r.next_hop_interface is None or r.next_hop_interface in managed))


def state_to_proto(state: NetworkState, managed: frozenset[str], protected: frozenset[str],
                   confirm_deadline: float | None) -> pb.GetNetworkStateResponse:
    out = pb.GetNetworkStateResponse(
        state=pb.NetworkState(interfaces=[interface_to_proto(i, i.name in managed, i.name in protected)
                                          for i in state.interfaces],
                              routes=[route_to_proto(r) for r in state.routes]),
        nmstate=to_text(state, managed))
    if confirm_deadline is not None:
        out.confirm_deadline.CopyFrom(timestamp(confirm_deadline))
    return out


def plan_to_proto(plan) -> pb.NetworkPlan:
    return pb.NetworkPlan(steps=[pb.PlanStep(action=s.action, target=s.target, detail=s.detail)
                                 for s in plan.steps])
