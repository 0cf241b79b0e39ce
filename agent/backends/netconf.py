"""Reading and changing a namespace's links, addresses and routes over
netlink: the agent never runs `ip`.

:class:`NetconfBackend` owns its sockets on one worker thread: pyroute2
0.9's sockets belong to the thread that made them, and entering a named
namespace (``setns``) applies to the calling thread only, so the worker enters
it once and every call is handed to it; no other thread of the agent moves.
``read()`` returns the live state as :class:`agent.network.model.NetworkState`
(every link, with kind options, ports, bridge port VLANs; addresses except
IPv6 link-local; unicast routes of every table except ``local``, not those
the kernel makes for an address), from raw dumps decoded by
:mod:`agent.backends.netconf_wire`.  ``execute(step)`` performs one
:class:`agent.network.plan.Step`, ``execute_all(steps)`` a plan's worth:
pyroute2 encodes every change; the common ones go out as single requests on
the raw socket (:mod:`agent.backends.netconf_requests`), the rest through
pyroute2's ``IPRoute``.
"""
from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from pyroute2 import IPRoute

from agent.backends import netconf_requests as requests
from agent.backends import netconf_wire as wire
from agent.backends.netconf_model import (BOND_MODES, XMIT_HASH_POLICIES, Address, Bond, Bridge, BridgePort,
                                          Interface, Macvlan, NetworkState, Route, StepFailed, Veth, Vlan,
                                          Vxlan)

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
IFF_UP = 1
RTPROT_STATIC = 4
RTEXT_FILTER_BRVLAN = wire.RTEXT_FILTER_BRVLAN
MACVLAN_MODE_BITS = requests.MACVLAN_MODE_BITS
MACVLAN_MODE_NAMES = {bit: name for name, bit in MACVLAN_MODE_BITS.items()}
BRIDGE_FLAGS_SELF = 2
PVID, UNTAGGED = 2, 4
VLAN_PROTOCOLS = {0x8100: "802.1q", 0x88A8: "802.1ad"}


def _enter(netns: str | None) -> None:
    """Moves the calling thread (the backend's worker, for good) into
    ``netns``; :func:`agent.backends.netns.call_in_netns` is for one-shot calls
    and would cost an IPRoute per step."""
    if netns is None:
        return
    path = netns if "/" in netns else os.path.join("/run/netns", netns)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


class NetconfBackend:
    """The namespace the agent runs in (``netns=None``) or a named one (tests)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._rt: wire.Rtnl | None = None    # dumps and the common changes (worker thread only)
        self._ipr: IPRoute | None = None     # the other changes, made at first need
        self._names: dict[str, int] = {}     # name -> ifindex, from the last link dump
        self._known: dict[bytes, dict] = {}  # the last dump's links, decoded (worker thread only)
        self._built: dict[int, tuple] = {}   # id(link) -> (link, context, Interface) of the last read
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netconf")

    def _call(self, fn: Callable[[], T]) -> T:
        def run() -> T:
            if self._rt is None:
                _enter(self.netns)
                self._rt = wire.Rtnl()
            return fn()
        return self._pool.submit(run).result()

    def close(self) -> None:
        """Idempotent; the backend cannot be used afterwards."""
        def shut() -> None:
            if self._ipr is not None:
                self._ipr.close()
            if self._rt is not None:
                self._rt.close()
            self._ipr = self._rt = None
        if self._closed:
            return
        if self._rt is not None:
            self._call(shut)
        self._closed = True
        self._pool.shutdown(wait=True)

    # ---- reading -------------------------------------------------------
    def read(self) -> NetworkState:
        return self._call(lambda: _read(self._rt, self._names, self._known, self._built))

    # ---- changing ------------------------------------------------------
    def execute(self, step: Any) -> None:
        self._call(lambda: self._execute(step))

    def execute_all(self, steps, progress: Callable[[int, int, str], None] | None = None) -> None:
        """Every step in order, on the worker in one go; the first that fails
        stops it: :class:`StepFailed` carries its position and the cause."""
        def run() -> None:
            for n, step in enumerate(steps):
                try:
                    self._execute(step)
                except Exception as exc:
                    raise StepFailed(n, exc) from exc
                if progress is not None:
                    progress(n + 1, len(steps), step.detail)
        self._call(run)

    def _execute(self, step: Any) -> None:
        """On the worker: the raw request where netconf_requests has one, else pyroute2."""
        assert self._rt is not None
        seq = self._rt.next_seq()
        data = requests.encode(step.action, step.target, step.args, seq, self._index)
        if data is not None:
            self._rt.request(data, seq)
            if step.action == "link.delete":
                self._names.pop(step.target, None)  # the kernel may reuse the ifindex
            return
        if self._ipr is None:
            self._ipr = IPRoute()
        _execute(self._ipr, step.action, step.target, step.args)

    def _index(self, name: str) -> int:
        """The ifindex of ``name``: from the table, or a fresh link dump on a miss."""
        found = self._names.get(name)
        if found is None:
            assert self._rt is not None
            self._names = wire.parse_link_names(self._rt.dump(wire.link_dump_request))
            found = self._names.get(name)
            if found is None:
                raise OSError(19, f"no interface {name!r}")
        return found


def _read(rt: wire.Rtnl, names_out: dict[str, int], known: dict[bytes, dict],
          built: dict[int, tuple]) -> NetworkState:
    """The live state from raw dumps (netconf_wire's parser: pyroute2's
    generic decoder was the whole cost of a re-plan).  ``names_out`` is
    refilled with {name: ifindex} for the steps that follow; ``known``
    holds the decoded links of the last dump (an unchanged link is not
    decoded again), ``built`` the Interface made of each (not made again
    when neither the link nor its names, ports and addresses changed)."""
    seen: dict[bytes, dict] = {}
    links = wire.parse_links(rt.dump(wire.link_dump_request), known, seen)
    known.clear()
    known.update(seen)  # only this dump's: the table never outgrows the namespace
    names = {m["index"]: m["name"] for m in links}
    names_out.clear()
    names_out.update({name: idx for idx, name in names.items()})
    ports: dict[int, list[int]] = {}
    for m in links:
        if m["master"]:
            ports.setdefault(m["master"], []).append(m["index"])
    vlans: dict[int, dict[int, int]] = {}
    # asked only when a bridge filters VLANs (a kernel without filtering has none)
    if any(m["kind"] == "bridge" and m["data"].get("vlan_filtering") for m in links):
        dump = rt.dump(lambda seq: wire.link_dump_request(seq, socket.AF_BRIDGE, RTEXT_FILTER_BRVLAN))
        vlans = {i: {vid: f & (PVID | UNTAGGED) for vid, f in t.items()}
                 for i, t in wire.parse_bridge_vlans(dump).items()}
    addrs: dict[int, dict[str, list[Address]]] = {}
    for idx, family, ip, prefixlen in wire.parse_addrs(rt.dump(wire.addr_dump_request)):
        fam = "ipv4" if family == socket.AF_INET else "ipv6"
        addrs.setdefault(idx, {"ipv4": [], "ipv6": []})[fam].append(Address(ip, prefixlen))
    ifaces = []
    none: dict[str, list[Address]] = {"ipv4": [], "ipv6": []}
    last = dict(built)
    built.clear()
    for m in links:
        idx = m["index"]
        port_ids = sorted(ports.get(idx, ()), key=names.__getitem__)
        mine = addrs.get(idx, none)
        v4, v6 = tuple(mine["ipv4"]), tuple(mine["ipv6"])
        # everything the Interface is made of besides the link's own message
        # (the same dict object when that message did not change)
        ctx = (names.get(m["master"]) if m["master"] else None, names.get(m["link"]) if m["link"] else None,
               tuple(names[i] for i in port_ids), v4, v6)
        before = last.get(id(m))
        if before is not None and before[0] is m and before[1] == ctx and not vlans:
            iface = before[2]  # frozen: building 500 of them again was a third of a re-plan
        else:
            opts = _options(m, names, port_ids, vlans)
            iface = Interface(
                name=m["name"], type=opts.pop("type"), state="up" if m["flags"] & IFF_UP else "down",
                mtu=m["mtu"], mac=m["mac"], ipv4=v4, ipv6=v6, controller=ctx[0], index=idx, **opts)
        built[id(m)] = (m, ctx, iface)
        ifaces.append(iface)
    routes = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in wire.parse_routes(rt.dump(lambda seq: wire.route_dump_request(seq, family))):
            routes.append(Route(destination=r["dst"], gateway=r["gateway"],
                                next_hop_interface=names.get(r["oif"]) if r["oif"] else None,
                                metric=r["metric"], table=r["table"], protocol=r["protocol"]))
    return NetworkState(interfaces=tuple(ifaces), routes=tuple(routes))


def _options(m: dict, names: dict, port_ids: list[int], vlans: dict) -> dict:
    kind, data, idx = m["kind"], m["data"], m["index"]
    link = m["link"]
    base = names.get(link) if link and not m["link_netnsid"] else None
    ports = tuple(names[i] for i in port_ids)
    if kind is None:
        return {"type": "loopback" if m["ifi_type"] == 772 else "ethernet"}
    if kind == "bond":
        mode = data.get("mode", 0)
        lacp = data.get("lacp_rate")
        xmit = data.get("xmit_hash_policy")
        return {"type": "bond", "bond": Bond(
            mode=BOND_MODES[mode] if mode < len(BOND_MODES) else str(mode),
            ports=ports, miimon=data.get("miimon"),
            lacp_rate=None if lacp is None else ("slow", "fast")[lacp == 1],
            xmit_hash_policy=XMIT_HASH_POLICIES[xmit] if xmit is not None and xmit < len(
                XMIT_HASH_POLICIES) else None)}
    if kind == "bridge":
        filtering = bool(data.get("vlan_filtering", 0))
        bports = [_bridge_port(names[i], vlans.get(i, {}), filtering) for i in port_ids]
        if filtering and idx in vlans:  # the bridge's own VLANs ("self")
            bports.append(_bridge_port(names[idx], vlans[idx], True))
        return {"type": "bridge", "bridge": Bridge(stp=bool(data.get("stp_state", 0)),
                                                   vlan_filtering=filtering, ports=tuple(bports))}
    if kind == "vlan":
        proto = data.get("protocol", 0x8100)
        return {"type": "vlan", "vlan": Vlan(base_iface=base or "", id=data.get("id", 0),
                                             protocol=VLAN_PROTOCOLS.get(proto, str(proto)))}
    if kind == "vxlan":
        remote = data.get("group") or data.get("group6")
        multicast = remote is not None and ipaddress.ip_address(remote).is_multicast
        vlink = data.get("link")
        return {"type": "vxlan", "vxlan": Vxlan(
            id=data.get("id", 0), base_iface=names.get(vlink) if vlink else None,
            local=data.get("local") or data.get("local6"),
            remote=None if multicast else remote, group=remote if multicast else None,
            destination_port=data.get("port", 4789), learning=bool(data.get("learning", 1)))}
    if kind == "veth":
        return {"type": "veth", "veth": Veth(peer=base) if base else None}
    if kind == "macvlan":
        mode = data.get("mode", MACVLAN_MODE_BITS["bridge"])
        return {"type": "macvlan", "macvlan": Macvlan(base_iface=base or "",
                                                       mode=MACVLAN_MODE_NAMES.get(mode, str(mode)))}
    if kind == "dummy":
        return {"type": "dummy"}
    return {"type": "unknown"}


def _bridge_port(name: str, table: dict[int, int], managed: bool) -> BridgePort:
    return BridgePort(name=name, vlans=tuple(sorted(v for v, f in table.items() if f != PVID | UNTAGGED)),
                      pvid=next((v for v, f in table.items() if f == PVID | UNTAGGED), None),
                      vlans_managed=managed)


def _index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OSError(19, f"no interface {name!r}")
    return found[0]


def _execute(ipr: IPRoute, action: str, target: str, args: dict) -> None:
    if action == "link.add":
        ipr.link("add", **_create_args(ipr, args["spec"], args.get("peer")))
    elif action == "link.delete":
        ipr.link("del", index=_index(ipr, target))
    elif action == "link.set":
        idx = _index(ipr, target)
        if "controller" in args:
            ipr.link("set", index=idx, master=_index(ipr, args["controller"]) if args["controller"] else 0)
        elif "mtu" in args:
            ipr.link("set", index=idx, mtu=args["mtu"])
        elif "mac" in args:
            ipr.link("set", index=idx, address=args["mac"])
        elif "state" in args:
            ipr.link("set", index=idx, state=args["state"])
        elif "stp" in args:
            ipr.link("set", index=idx, kind="bridge", br_stp_state=int(args["stp"]))
        elif "vlan_filtering" in args:
            ipr.link("set", index=idx, kind="bridge", br_vlan_filtering=int(args["vlan_filtering"]))
        else:
            raise ValueError(f"link.set without a known attribute: {sorted(args)}")
    elif action in ("addr.add", "addr.delete"):
        ipr.addr("add" if action == "addr.add" else "del", index=_index(ipr, target),
                 address=args["ip"], prefixlen=args["prefix_length"])
    elif action in ("route.add", "route.delete"):
        r: Route = args["route"]
        spec: dict[str, Any] = {"dst": r.destination}
        if r.gateway:
            spec["gateway"] = r.gateway
        if r.next_hop_interface:
            spec["oif"] = _index(ipr, r.next_hop_interface)
        key = r.key()
        spec["priority"], spec["table"] = key[3], key[4]
        if action == "route.add":
            spec["proto"] = r.protocol or RTPROT_STATIC
        ipr.route("add" if action == "route.add" else "del", **spec)
    elif action in ("vlan.add", "vlan.delete"):
        extra = {"vlan_flags": BRIDGE_FLAGS_SELF} if args.get("self") else {}
        ipr.vlan_filter("add" if action == "vlan.add" else "del", index=_index(ipr, target),
                        vlan_info={"vid": args["vid"], "flags": args["flags"]}, **extra)
    else:
        raise ValueError(f"unknown step {action!r}")


def _create_args(ipr: IPRoute, i: Interface, peer: Interface | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ifname": i.name, "kind": i.type}
    if i.index is not None:
        spec["index"] = i.index  # a rollback gives the link back its ifindex
    if i.mtu is not None:
        spec["mtu"] = i.mtu
    if i.mac is not None:
        spec["address"] = i.mac
    if i.bond:
        b = i.bond
        spec["bond_mode"] = BOND_MODES.index(b.mode)
        if b.miimon is not None:
            spec["bond_miimon"] = b.miimon
        if b.lacp_rate is not None:
            spec["bond_ad_lacp_rate"] = int(b.lacp_rate == "fast")
        if b.xmit_hash_policy is not None:
            spec["bond_xmit_hash_policy"] = XMIT_HASH_POLICIES.index(b.xmit_hash_policy)
    elif i.bridge:
        if i.bridge.stp is not None:
            spec["br_stp_state"] = int(i.bridge.stp)
        if i.bridge.vlan_filtering:  # a kernel without filtering refuses even "0"
            spec["br_vlan_filtering"] = 1
    elif i.vlan:
        spec.update(link=_index(ipr, i.vlan.base_iface), vlan_id=i.vlan.id,
                    vlan_protocol={v: k for k, v in VLAN_PROTOCOLS.items()}[i.vlan.protocol])
    elif i.vxlan:
        v = i.vxlan
        spec.update(vxlan_id=v.id, vxlan_port=v.destination_port, vxlan_learning=int(v.learning))
        v6 = any(x and ":" in x for x in (v.local, v.remote, v.group))
        if v.local:
            spec["vxlan_local6" if v6 else "vxlan_local"] = v.local
        if v.remote or v.group:
            spec["vxlan_group6" if v6 else "vxlan_group"] = v.remote or v.group
        if v.base_iface:
            spec["vxlan_link"] = _index(ipr, v.base_iface)
    elif i.veth:
        # pyroute2's ``peer=`` cannot carry the peer's ifindex (a header field),
        # so the link info is spelled out: a rollback restores both indexes.
        attrs: list[list[Any]] = [["IFLA_IFNAME", i.veth.peer]]
        if peer is not None and peer.mtu is not None:
            attrs.append(["IFLA_MTU", peer.mtu])
        if peer is not None and peer.mac is not None:
            attrs.append(["IFLA_ADDRESS", peer.mac])
        peer_msg: dict[str, Any] = {"attrs": attrs}
        if peer is not None and peer.index is not None:
            peer_msg["index"] = peer.index
        del spec["kind"]
        spec["IFLA_LINKINFO"] = {"attrs": [["IFLA_INFO_KIND", "veth"], ["IFLA_INFO_DATA", {
            "attrs": [["VETH_INFO_PEER", peer_msg]]}]]}
    elif i.macvlan:
        spec.update(link=_index(ipr, i.macvlan.base_iface), macvlan_mode=i.macvlan.mode)
    return spec
