"""The common plan steps as single rtnetlink requests, encoded by pyroute2's
message classes and sent by :class:`agent.backends.netconf_wire.Rtnl`
(one request, its acknowledgement, the next: ``ip -batch``'s pace, without
pyroute2's per-call thread hop and name lookup).

Covered: links set (state, MTU, MAC, controller), removed, and created
when they are a dummy, bridge, macvlan or VLAN; addresses added and removed.
Everything else (bond, VXLAN and veth creation, bridge options, routes,
bridge VLANs) returns None from :func:`encode` and goes through pyroute2's
``IPRoute`` as before: those are few per plan and their attribute sets are
where pyroute2's request filters earn their keep.

Links are named by ``IFLA_IFNAME`` with ifindex 0 where the kernel allows it
(``RTM_NEWLINK`` without ``NLM_F_CREATE`` and ``RTM_DELLINK`` look the name
up), so a link made by an earlier step needs no lookup; a base, controller
or address's link needs its ifindex, from ``index_of`` (the backend's table,
refreshed from a link dump on a miss).
"""
from __future__ import annotations

import socket
from typing import Callable

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from agent.backends.netconf_model import Interface
from agent.backends.netconf_wire import NLM_F_ACK, NLM_F_REQUEST, RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK

RTM_DELADDR = 21
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
IFF_UP = 1
MACVLAN_MODE_BITS = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
VLAN_PROTOCOL_IDS = {"802.1q": 0x8100, "802.1ad": 0x88A8}
FAST_KINDS = ("dummy", "bridge", "macvlan", "vlan")


def _link_msg(kind: int, flags: int, seq: int, index: int = 0, attrs: list | None = None) -> ifinfmsg:
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    msg["attrs"] = attrs or []
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    return msg


def encode(action: str, target: str, args: dict, seq: int, index_of: Callable[[str], int]) -> bytes | None:
    """The request for one step, or None when pyroute2's IPRoute makes it."""
    ack = NLM_F_REQUEST | NLM_F_ACK
    msg = None
    if action == "link.set":
        by_name = [("IFLA_IFNAME", target)]
        if "controller" in args:
            master = index_of(args["controller"]) if args["controller"] else 0
            msg = _link_msg(RTM_NEWLINK, ack, seq, attrs=by_name + [("IFLA_MASTER", master)])
        elif "mtu" in args:
            msg = _link_msg(RTM_NEWLINK, ack, seq, attrs=by_name + [("IFLA_MTU", args["mtu"])])
        elif "mac" in args:
            msg = _link_msg(RTM_NEWLINK, ack, seq, attrs=by_name + [("IFLA_ADDRESS", args["mac"])])
        elif "state" in args:
            msg = _link_msg(RTM_NEWLINK, ack, seq, attrs=by_name)
            msg["flags"] = IFF_UP if args["state"] == "up" else 0
            msg["change"] = IFF_UP
    elif action == "link.delete":
        msg = _link_msg(RTM_DELLINK, ack, seq, attrs=[("IFLA_IFNAME", target)])
    elif action == "link.add" and args["spec"].type in FAST_KINDS:
        msg = _create(args["spec"], ack | NLM_F_CREATE | NLM_F_EXCL, seq, index_of)
    elif action in ("addr.add", "addr.delete"):
        family = socket.AF_INET6 if ":" in args["ip"] else socket.AF_INET
        msg = ifaddrmsg()
        msg["family"] = family
        msg["prefixlen"] = args["prefix_length"]
        msg["index"] = index_of(target)
        msg["attrs"] = [("IFA_LOCAL", args["ip"]), ("IFA_ADDRESS", args["ip"])]
        add = action == "addr.add"
        msg["header"]["type"] = RTM_NEWADDR if add else RTM_DELADDR
        msg["header"]["flags"] = ack | (NLM_F_CREATE | NLM_F_EXCL if add else 0)
        msg["header"]["sequence_number"] = seq
    if msg is None:
        return None
    msg.encode()
    return bytes(msg.data)


def _create(i: Interface, flags: int, seq: int, index_of: Callable[[str], int]) -> ifinfmsg:
    attrs: list = [("IFLA_IFNAME", i.name)]
    if i.mtu is not None:
        attrs.append(("IFLA_MTU", i.mtu))
    if i.mac is not None:
        attrs.append(("IFLA_ADDRESS", i.mac))
    data: list = []
    if i.bridge:
        if i.bridge.stp is not None:
            data.append(("IFLA_BR_STP_STATE", int(i.bridge.stp)))
        if i.bridge.vlan_filtering:  # a kernel without filtering refuses even "0"
            data.append(("IFLA_BR_VLAN_FILTERING", 1))
    elif i.vlan:
        attrs.append(("IFLA_LINK", index_of(i.vlan.base_iface)))
        data += [("IFLA_VLAN_ID", i.vlan.id), ("IFLA_VLAN_PROTOCOL", VLAN_PROTOCOL_IDS[i.vlan.protocol])]
    elif i.macvlan:
        attrs.append(("IFLA_LINK", index_of(i.macvlan.base_iface)))
        data.append(("IFLA_MACVLAN_MODE", MACVLAN_MODE_BITS[i.macvlan.mode]))
    info: list = [("IFLA_INFO_KIND", i.type)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    attrs.append(("IFLA_LINKINFO", {"attrs": info}))
    # a rollback gives the link back its ifindex
    return _link_msg(RTM_NEWLINK, flags, seq, index=i.index or 0, attrs=attrs)
