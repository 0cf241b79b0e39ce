"""The ordered list of kernel changes that takes the live state to the desired one.

:func:`compute` is pure (live state in, steps out), so the ordering rules are
tested without a kernel.  Order, as the kernel needs it:

1. routes removed, then addresses removed (before the links they sit on go);
2. ports released from a bond/bridge that no longer lists them;
3. links removed, dependents first (a VLAN before its base);
4. links created, bases first (a VLAN after its base, a bond's ports exist first);
5. attributes (MTU bases first, MAC, bridge STP / VLAN filtering);
6. ports enslaved (a bond port is taken down first: the bond requires it),
   then a bridge's MTU set again (a joining port resets it);
7. bridge port VLANs;
8. admin state: ports and bases up before what sits on them;
9. addresses added, then routes added (a gateway needs its address first).

A recreated link (its kind or an immutable option changed) is removed and
created again, and so is every desired link stacked on it, because the kernel
removes those with it.  Comparisons skip what the desired state leaves as
``None`` (kernel defaults are not managed), so a second plan for the same
config is empty.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from agent.network.model import (CONFIGURE_ONLY_KINDS, Address, BridgePort, Interface, NetworkState, Route,
                                 replace)

CREATED_KINDS = ("bond", "bridge", "vlan", "vxlan", "veth", "dummy", "macvlan")
PVID, UNTAGGED = 2, 4  # BRIDGE_VLAN_INFO_* flags


@dataclass(frozen=True)
class Step:
    action: str        # link.add link.delete link.set addr.add addr.delete route.add route.delete vlan.add vlan.delete
    target: str        # the interface (for routes: the destination)
    detail: str        # what it does, in `ip` terms, for people
    args: dict = field(default_factory=dict, compare=False, hash=False)  # JSON-able, for the backend


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    def touched(self) -> frozenset[str]:
        """Interfaces a step changes (not routes' destinations)."""
        return frozenset(s.target for s in self.steps if not s.action.startswith("route."))

    def __len__(self) -> int:
        return len(self.steps)


def link_local(a: Address) -> bool:
    return ipaddress.ip_address(a.ip).is_link_local and ":" in a.ip


def route_matches(want: Route, have: Route) -> bool:
    """``have`` (live) is the route ``want`` describes; an unnamed device
    matches any.  For a present route an unset metric/table is the kernel's
    default; for an ``absent`` one, an unset field matches anything (as in
    nmstate: "remove every route to 10.99.0.0/16")."""
    w, h = want.key(), have.key()
    if want.state == "absent":
        return all(x is None or x == y for x, y in zip(
            (want.destination, want.gateway, want.next_hop_interface, want.metric, want.table), h))
    return (w[0] == h[0] and w[1] == h[1] and w[3] == h[3] and w[4] == h[4]
            and (want.next_hop_interface is None or w[2] == h[2]))


def effective(desired: NetworkState, live: NetworkState) -> dict[str, Interface]:
    """Declared interfaces plus implicit ones: a bond/bridge port the config
    lists but does not declare is brought up and enslaved, nothing else."""
    out = dict(desired.by_name())
    live_by = live.by_name()
    for iface in desired.interfaces:
        if iface.state == "absent":
            continue
        ports = (iface.bond.ports if iface.bond else ()) + tuple(
            p.name for p in (iface.bridge.ports if iface.bridge else ()) if p.name != iface.name)
        for port in ports:
            if port not in out and port in live_by:
                out[port] = Interface(name=port, type="ethernet", state="up", controller=iface.name,
                                      ipv4_managed=False, ipv6_managed=False)
    return out


def order(ifaces: dict[str, Interface]) -> list[str]:
    """Names with bases and ports before what depends on them (validation has
    ruled out cycles; a leftover cycle falls back to the given order)."""
    deps: dict[str, set[str]] = {n: set() for n in ifaces}
    for n, i in ifaces.items():
        if i.base() in ifaces:
            deps[n].add(i.base())
        if i.controller in ifaces:
            deps[i.controller].add(n)
    done: list[str] = []
    seen: set[str] = set()

    def visit(n: str, stack: frozenset[str]) -> None:
        if n in seen or n in stack:
            return
        for d in sorted(deps[n]):
            visit(d, stack | {n})
        seen.add(n)
        done.append(n)
    for n in ifaces:
        visit(n, frozenset())
    return done


def _kind_differs(want: Interface, have: Interface) -> bool:
    """Must the link be removed and created again to match?"""
    if want.type in CONFIGURE_ONLY_KINDS:
        return False
    if want.type != have.type:
        return True
    if want.vlan and have.vlan:
        return (want.vlan.base_iface, want.vlan.id, want.vlan.protocol) != (
            have.vlan.base_iface, have.vlan.id, have.vlan.protocol)
    if want.vxlan and have.vxlan:
        w, h = want.vxlan, have.vxlan
        return ((w.id, w.remote, w.group, w.destination_port, w.learning) != (
            h.id, h.remote, h.group, h.destination_port, h.learning)
            or (w.local is not None and w.local != h.local)
            or (w.base_iface is not None and w.base_iface != h.base_iface))
    if want.macvlan and have.macvlan:
        return (want.macvlan.base_iface, want.macvlan.mode) != (have.macvlan.base_iface, have.macvlan.mode)
    if want.veth and have.veth:
        return want.veth.peer != have.veth.peer
    if want.bond and have.bond:
        w, h = want.bond, have.bond
        return (w.mode != h.mode or (w.miimon is not None and w.miimon != h.miimon)
                or (w.lacp_rate is not None and w.lacp_rate != h.lacp_rate)
                or (w.xmit_hash_policy is not None and w.xmit_hash_policy != h.xmit_hash_policy))
    return False


def dependents(names: set[str], live: NetworkState) -> set[str]:
    """``names`` plus every live link the kernel removes with them (stacked
    links, the other end of a veth), transitively."""
    out = set(names)
    grew = True
    while grew:
        grew = False
        for i in live.interfaces:
            if i.name in out:
                continue
            if i.base() in out or (i.veth and i.veth.peer in out):
                out.add(i.name)
                grew = True
    return out


def _self_vlans(name: str, ifaces: dict[str, Interface]) -> BridgePort | None:
    """A VLAN-filtering bridge carries the VIDs of the VLAN links declared on
    it on its own port (``bridge vlan add ... self``), or they see no traffic."""
    br = ifaces[name]
    if not (br.bridge and br.bridge.vlan_filtering):
        return None
    for p in br.bridge.ports:
        if p.name == name:
            return p
    vids = sorted({i.vlan.id for i in ifaces.values()
                   if i.vlan and i.vlan.base_iface == name and i.state != "absent"})
    return BridgePort(name=name, vlans=tuple(vids), vlans_managed=False) if vids else None


def _vlan_table(p: BridgePort | None) -> dict[int, int]:
    if p is None:
        return {}
    table = {v: 0 for v in p.vlans}
    if p.pvid is not None:
        table[p.pvid] = PVID | UNTAGGED
    return table


def compute(desired: NetworkState, live: NetworkState, managed: frozenset[str] = frozenset(),
            managed_routes: tuple[Route, ...] = ()) -> Plan:
    """The steps from ``live`` to ``desired``; ``managed`` interfaces (and
    ``managed_routes``) missing from ``desired`` are removed."""
    live_by = live.by_name()
    want = effective(desired, live)
    steps: list[Step] = []
    add = steps.append

    removable = [n for n, i in want.items() if i.state == "absent" and n in live_by]
    removable += [n for n in managed if n not in want and n in live_by]
    removing = {n for n in removable if live_by[n].type in CREATED_KINDS}
    recreate = {n for n, i in want.items()
                if i.state != "absent" and n in live_by and _kind_differs(i, live_by[n])}
    gone = dependents(removing | recreate, live)  # what the kernel no longer has after the deletes
    recreate |= {n for n in gone if n in want and want[n].state != "absent"}
    present = {n: i for n, i in want.items() if i.state != "absent"}
    names = order(present)

    # 1. routes, then addresses, removed
    desired_routes = [r for r in desired.routes if r.state != "absent"]
    for r in live.routes:
        if r.next_hop_interface in gone:
            continue
        drop = any(route_matches(a, r) for a in desired.routes if a.state == "absent")
        drop = drop or (any(route_matches(m, r) for m in managed_routes)
                        and not any(route_matches(d, r) for d in desired_routes))
        if drop:
            add(_route_step("route.delete", r))
    for n in names:
        i, have = present[n], live_by.get(n)
        if have is None or n in gone:
            continue
        for family in ("ipv4", "ipv6"):
            if not getattr(i, f"{family}_managed"):
                continue
            wanted = set(getattr(i, family))
            for a in getattr(have, family):
                if a not in wanted and not link_local(a):
                    add(Step("addr.delete", n, f"ip addr del {a.ip}/{a.prefix_length} dev {n}",
                             {"ip": a.ip, "prefix_length": a.prefix_length}))

    # 2. ports released (a bond closes a port it lets go: it is down afterwards)
    downed: set[str] = set()
    for n in names:
        have = live_by.get(n)
        if (have is None or n in gone or not have.controller or have.controller in gone
                or have.controller == present[n].controller):
            continue
        owner = present.get(have.controller)
        if present[n].controller is not None or (owner is not None and owner.type in ("bond", "bridge")):
            add(Step("link.set", n, f"ip link set {n} nomaster", {"controller": None}))
            if live_by[have.controller].type == "bond":
                downed.add(n)

    # 3. links removed, dependents first
    deleted: set[str] = set()
    for n in reversed(order({x: live_by[x] for x in live_by if x in removing | recreate})):
        if n in deleted:
            continue
        add(Step("link.delete", n, f"ip link del {n}", {}))
        deleted |= dependents({n}, live)

    # 4. links created, bases first (with their MTU, MAC and options)
    created: set[str] = set()
    for n in names:
        i = present[n]
        if (n in live_by and n not in gone) or n in created:
            continue
        # a veth's peer is made by the same request, with its own MTU, MAC, ifindex
        peer = present.get(i.veth.peer) if i.veth else None
        add(Step("link.add", n, _describe_add(i), {"spec": i, "peer": peer}))
        created.add(n)
        if i.veth:
            created.add(i.veth.peer)
    made = {s.target for s in steps if s.action == "link.add"}
    made |= {s.args["peer"].name for s in steps if s.action == "link.add" and s.args["peer"] is not None}

    def now(n: str) -> Interface | None:
        """The link as it is once the deletes ran (None: it is new)."""
        if n in created or n in gone:
            return None
        have = live_by.get(n)
        if have is not None and have.controller in gone:  # its bond/bridge went: released
            bond = live_by[have.controller].type == "bond"
            have = replace(have, controller=None, state="down" if bond else have.state)
        return have

    # 5. attributes (of links that exist; new ones were made with theirs)
    mtu_set: set[str] = set()
    for n in names:
        i, have = present[n], now(n)
        if n in made:
            continue
        if i.mtu is not None and (have is None or have.mtu != i.mtu):
            add(Step("link.set", n, f"ip link set {n} mtu {i.mtu}", {"mtu": i.mtu}))
            mtu_set.add(n)
        if i.mac is not None and (have is None or (have.mac or "").lower() != i.mac.lower()):
            add(Step("link.set", n, f"ip link set {n} address {i.mac}", {"mac": i.mac}))
        if i.bridge and have is not None and have.bridge:
            if i.bridge.stp is not None and bool(have.bridge.stp) != i.bridge.stp:
                add(Step("link.set", n, f"ip link set {n} type bridge stp_state {int(i.bridge.stp)}",
                         {"stp": i.bridge.stp}))
            if i.bridge.vlan_filtering is not None and bool(have.bridge.vlan_filtering) != i.bridge.vlan_filtering:
                add(Step("link.set", n, f"ip link set {n} type bridge vlan_filtering {int(i.bridge.vlan_filtering)}",
                         {"vlan_filtering": i.bridge.vlan_filtering}))

    # 6. ports enslaved
    enslaved: set[str] = set()
    for n in names:
        i, have = present[n], now(n)
        if i.controller is None or (have is not None and have.controller == i.controller):
            continue
        if present.get(i.controller) is not None and present[i.controller].type == "bond" and (
                have is None or have.state == "up"):
            add(Step("link.set", n, f"ip link set {n} down", {"state": "down"}))
            downed.add(n)
        add(Step("link.set", n, f"ip link set {n} master {i.controller}", {"controller": i.controller}))
        enslaved.add(i.controller)
    # 6b. A bridge whose MTU nobody set through a change request (one made
    # with IFLA_MTU, or left as it was) takes its ports' least MTU each time
    # a port joins, so its MTU is set again once the ports are in.  Set by a
    # change request, the kernel keeps it (BROPT_MTU_SET_BY_USER); an MTU set
    # in step 5 is such a request, and came before the VLANs above it.
    for n in names:
        i = present[n]
        if i.bridge and i.mtu is not None and n in enslaved and n not in mtu_set:
            add(Step("link.set", n, f"ip link set {n} mtu {i.mtu}", {"mtu": i.mtu}))

    # 7. bridge port VLANs
    for n in names:
        br = present[n]
        if not (br.bridge and br.bridge.vlan_filtering):
            continue
        have = now(n)
        live_ports = {p.name: p for p in (have.bridge.ports if have is not None and have.bridge else ())}
        filtering_now = have is not None and have.bridge is not None and bool(have.bridge.vlan_filtering)
        ports = [p for p in br.bridge.ports if p.name != n]
        me = _self_vlans(n, present)
        for p in ports + ([me] if me else []):
            is_self = p.name == n
            if p.name not in present and p.name not in live_by:
                continue
            # What the port has: as read, if the bridge filters already and the port
            # stays; otherwise the kernel's default_pvid, which every port (and the
            # bridge itself) gets on joining, whether or not filtering is on yet.
            known = filtering_now and (is_self or (now(p.name) is not None and p.name in live_ports))
            current = _vlan_table(live_ports.get(p.name)) if known else {1: PVID | UNTAGGED}
            target = _vlan_table(p)
            if p.vlans_managed:
                for vid, flags in sorted(current.items()):
                    if target.get(vid) != flags and vid not in target:
                        add(_vlan_step("vlan.delete", p.name, vid, flags, is_self))
            for vid, flags in sorted(target.items()):
                if current.get(vid) != flags:
                    add(_vlan_step("vlan.add", p.name, vid, flags, is_self))

    # 8. admin state, ports and bases first
    for n in names:
        i, have = present[n], now(n)
        is_up = have is not None and have.state == "up" and n not in downed
        if i.state == "up" and not is_up:
            add(Step("link.set", n, f"ip link set {n} up", {"state": "up"}))
        elif i.state == "down" and is_up:
            add(Step("link.set", n, f"ip link set {n} down", {"state": "down"}))

    # 9. addresses, then routes
    for n in names:
        i, have = present[n], now(n)
        for family in ("ipv4", "ipv6"):
            current = set(getattr(have, family)) if have is not None else set()
            for a in getattr(i, family):
                if a not in current:
                    add(Step("addr.add", n, f"ip addr add {a.ip}/{a.prefix_length} dev {n}",
                             {"ip": a.ip, "prefix_length": a.prefix_length}))
    live_routes = [r for r in live.routes if r.next_hop_interface not in gone]
    for r in desired_routes:
        if not any(route_matches(r, h) for h in live_routes):
            add(_route_step("route.add", r))
    return Plan(tuple(steps))


def _route_step(action: str, r: Route) -> Step:
    verb = "add" if action == "route.add" else "del"
    text = f"ip route {verb} {r.destination}"
    if r.gateway:
        text += f" via {r.gateway}"
    if r.next_hop_interface:
        text += f" dev {r.next_hop_interface}"
    if r.metric is not None:
        text += f" metric {r.metric}"
    if r.table is not None:
        text += f" table {r.table}"
    return Step(action, r.destination, text, {"route": r})


def _vlan_step(action: str, port: str, vid: int, flags: int, is_self: bool) -> Step:
    verb = "add" if action == "vlan.add" else "del"
    words = (" pvid" if flags & PVID else "") + (" untagged" if flags & UNTAGGED else "")
    return Step(action, port, f"bridge vlan {verb} dev {port} vid {vid}{words}{' self' if is_self else ''}",
                {"vid": vid, "flags": flags, "self": is_self})


def _describe_add(i: Interface) -> str:
    text = f"ip link add {i.name}"
    if i.vlan:
        text += f" link {i.vlan.base_iface} type vlan id {i.vlan.id} protocol {i.vlan.protocol}"
    elif i.vxlan:
        v = i.vxlan
        text += f" type vxlan id {v.id} dstport {v.destination_port}"
        text += "".join(f" {k} {x}" for k, x in (("local", v.local), ("remote", v.remote), ("group", v.group),
                                                  ("dev", v.base_iface)) if x)
        text += "" if v.learning else " nolearning"
    elif i.macvlan:
        text += f" link {i.macvlan.base_iface} type macvlan mode {i.macvlan.mode}"
    elif i.veth:
        text += f" type veth peer name {i.veth.peer}"
    elif i.bond:
        text += f" type bond mode {i.bond.mode}"
        text += "".join(f" {k} {x}" for k, x in (("miimon", i.bond.miimon), ("lacp_rate", i.bond.lacp_rate),
                                                  ("xmit_hash_policy", i.bond.xmit_hash_policy)) if x is not None)
    elif i.bridge:
        text += " type bridge"
        if i.bridge.stp is not None:
            text += f" stp_state {int(i.bridge.stp)}"
        if i.bridge.vlan_filtering:
            text += " vlan_filtering 1"
    else:
        text += f" type {i.type}"
    if i.index is not None:
        text += f" index {i.index}"
    return text
