"""What a plan touches, captured before it runs, and the plan back to it.

The snapshot holds, for every interface a step changes (plus what the kernel
changes with it: the other end of a veth, links stacked on a removed one, the
ports and controller of a touched bond or bridge), its full live state:
kind, options, MTU, MAC, admin state, controller, every address, ifindex.
An interface the plan creates is recorded as ``absent``.  Routes: every live
route through a touched interface or removed by a step, and each route a
step adds, recorded as ``absent``.  Rolling back is planning from the live
state to the snapshot, with addresses compared exactly, so the same ordering
rules undo the change; a removed link is created again with its old ifindex
and MAC, so ``ip -j link`` reads as before.
"""
from __future__ import annotations

from agent.network.model import Interface, NetworkState, replace
from agent.network.plan import Plan, dependents, compute, route_matches


def touched(plan: Plan, live: NetworkState) -> set[str]:
    live_by = live.by_name()
    names = set(plan.touched())
    names |= dependents({s.target for s in plan.steps if s.action == "link.delete"}, live)
    for s in plan.steps:
        if s.action == "link.add" and s.args["spec"].veth:
            names.add(s.args["spec"].veth.peer)
        if s.action == "link.set" and s.args.get("controller"):
            names.add(s.args["controller"])
    grew = True
    while grew:  # ports and controllers of what is touched, and veth peers
        grew = False
        for n in list(names):
            i = live_by.get(n)
            if i is None:
                continue
            extra = set()
            if i.controller:
                extra.add(i.controller)
            if i.veth and i.veth.peer:
                extra.add(i.veth.peer)
            extra |= {x.name for x in live.interfaces if x.controller == n}
            if not extra <= names:
                names |= extra
                grew = True
    return names


def take(plan: Plan, live: NetworkState) -> NetworkState:
    live_by = live.by_name()
    names = touched(plan, live)
    ifaces = []
    for n in sorted(names):
        if n in live_by:
            ifaces.append(replace(live_by[n], ipv4_managed=True, ipv6_managed=True))
        else:
            ifaces.append(Interface(name=n, type="unknown", state="absent"))
    deleted = [s.args["route"] for s in plan.steps if s.action == "route.delete"]
    routes = [r for r in live.routes
              if r.next_hop_interface in names or any(route_matches(d, r) for d in deleted)]
    for s in plan.steps:
        if s.action == "route.add" and not any(route_matches(s.args["route"], r) for r in routes):
            routes.append(replace(s.args["route"], state="absent"))
    return NetworkState(interfaces=tuple(ifaces), routes=tuple(routes))


def restore_plan(snapshot: NetworkState, live: NetworkState) -> Plan:
    """The steps from ``live`` back to ``snapshot``: routes the kernel made for
    an address come back with the address; recorded ones are re-added with
    their old protocol; ``absent`` ones (added by the apply) are removed."""
    return compute(snapshot, live)


def differences(snapshot: NetworkState, live: NetworkState) -> list[str]:
    """What still differs from the snapshot (empty: rolled back exactly)."""
    return [s.detail for s in restore_plan(snapshot, live).steps]


