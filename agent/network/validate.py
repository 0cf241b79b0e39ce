"""Every check on a desired state, before anything changes.  Each failure is
an :class:`~agent.errors.InvalidArgument` naming the field path as the
nmstate document has it (``interfaces[3].vlan.base-iface``,
``routes.config[0].next-hop-address``), with at most 100 characters of the
caller's input quoted.  The checks below speak the model's field names; the
one table that turns them into nmstate's is :func:`agent.network.paths.nmstate_path`."""
from __future__ import annotations

import ipaddress
import re

from agent.errors import InvalidArgument, quote
from agent.network.model import (BOND_MODES, CONFIGURE_ONLY_KINDS, KINDS, LACP_RATES, LIVE_ONLY_KINDS,
                                 MACVLAN_MODES, STATES, VLAN_PROTOCOLS, XMIT_HASH_POLICIES, Interface,
                                 NetworkState)
from agent.network.paths import nmstate_error

NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # the kernel also takes others; these survive every tool
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
MTU_MIN, MTU_MAX, MTU_MIN_IPV6 = 68, 65536, 1280  # 65536: loopback's; each driver caps its own
VNI_MAX = (1 << 24) - 1


def check_name(path: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(path, "is required")
    if len(name.encode()) > 15:
        raise InvalidArgument(path, f"{quote(name)} is longer than 15 bytes")
    if not NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(path, f"{quote(name)} may hold only letters, digits, '.', '-' and '_'")


def _ip(path: str, value: object, version: int | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        ip = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidArgument(path, f"{quote(value)} is not an IP address") from None
    if version is not None and ip.version != version:
        raise InvalidArgument(path, f"{quote(value)} is not an IPv{version} address")
    return ip


def _choice(path: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidArgument(path, f"{quote(value)} is not one of {', '.join(allowed)}")


def _range(path: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(path, f"{quote(value)} is not in {low}-{high}")


def validate(desired: NetworkState, live: NetworkState) -> None:
    """Raises InvalidArgument naming the nmstate field path of the first error."""
    try:
        _validate(desired, live)
    except InvalidArgument as exc:
        raise nmstate_error(exc) from None


def _validate(desired: NetworkState, live: NetworkState) -> None:
    live_by = live.by_name()
    declared: dict[str, int] = {}
    for n, iface in enumerate(desired.interfaces):
        p = f"interfaces[{n}]"
        check_name(f"{p}.name", iface.name)
        if iface.name in declared:
            raise InvalidArgument(f"{p}.name", f"{quote(iface.name)} is already interfaces[{declared[iface.name]}]")
        declared[iface.name] = n
    present = {i.name for i in desired.interfaces if i.state != "absent"}
    desired_by = desired.by_name()

    def exists(name: str | None) -> bool:
        return bool(name) and (name in present or (name in live_by and name not in declared))

    seen_addrs: dict[str, str] = {}
    owner: dict[str, tuple[str, str]] = {}
    for n, i in enumerate(desired.interfaces):
        p = f"interfaces[{n}]"
        _choice(f"{p}.type", i.type, KINDS + LIVE_ONLY_KINDS)
        _choice(f"{p}.state", i.state, STATES)
        if i.type in CONFIGURE_ONLY_KINDS:
            if i.name not in live_by:
                raise InvalidArgument(f"{p}.name", f"{i.type} {quote(i.name)} does not exist ({i.type} devices "
                                                   "are configured, never created)")
            if i.state == "absent":
                raise InvalidArgument(f"{p}.state", f"an {i.type} device cannot be removed; use down")
        if i.state == "absent":
            continue
        for key in ("bond", "bridge", "vlan", "vxlan", "veth", "macvlan"):
            if getattr(i, key) is not None and key != i.type:
                raise InvalidArgument(f"{p}.{key}", f"does not belong to an interface of type {i.type}")
            if getattr(i, key) is None and key == i.type:
                raise InvalidArgument(f"{p}.{key}", f"is required for type {i.type}")
        if i.mtu is not None:
            _range(f"{p}.mtu", i.mtu, MTU_MIN, MTU_MAX)
            if i.ipv6 and i.mtu < MTU_MIN_IPV6:
                raise InvalidArgument(f"{p}.mtu", f"{i.mtu} is below {MTU_MIN_IPV6}, the least IPv6 needs")
        if i.mac is not None and not MAC.fullmatch(str(i.mac)):
            raise InvalidArgument(f"{p}.mac", f"{quote(i.mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        for family, version, top in (("ipv4", 4, 32), ("ipv6", 6, 128)):
            for k, a in enumerate(getattr(i, family)):
                ip = _ip(f"{p}.{family}[{k}].ip", a.ip, version)
                _range(f"{p}.{family}[{k}].prefix_length", a.prefix_length, 0 if version == 6 else 1, top)
                if str(ip) in seen_addrs:
                    raise InvalidArgument(f"{p}.{family}[{k}].ip", f"{a.ip} is also {seen_addrs[str(ip)]}")
                seen_addrs[str(ip)] = f"{p}.{family}[{k}].ip"
        _kind(p, i, exists, desired_by, live_by)
        for k, port in enumerate(_ports(i)):
            ppath = f"{p}.bond.ports[{k}]" if i.bond else f"{p}.bridge.ports[{k}].name"
            check_name(ppath, port)
            if port == i.name:
                raise InvalidArgument(ppath, f"{quote(port)} cannot be a port of itself")
            if not exists(port):
                raise InvalidArgument(ppath, f"{quote(port)} is neither declared nor present")
            if port in owner and owner[port][0] != i.name:
                raise InvalidArgument(ppath, f"{quote(port)} is already a port of {owner[port][0]} ({owner[port][1]})")
            owner[port] = (i.name, ppath)
    for n, i in enumerate(desired.interfaces):
        if i.state == "absent" or i.controller is None:
            continue
        p = f"interfaces[{n}].controller"
        if i.controller not in present:
            raise InvalidArgument(p, f"{quote(i.controller)} is not a declared bond or bridge")
        if owner.get(i.name, (None,))[0] != i.controller:
            raise InvalidArgument(p, f"{quote(i.controller)} does not list {quote(i.name)} as a port")
    _cycles(desired)
    _routes(desired, live, exists)


def _ports(i: Interface) -> tuple[str, ...]:
    if i.bond:
        return i.bond.ports
    if i.bridge:
        return tuple(p.name for p in i.bridge.ports)
    return ()


def _kind(p: str, i: Interface, exists, desired_by: dict[str, Interface], live_by: dict) -> None:
    if i.bond:
        _choice(f"{p}.bond.mode", i.bond.mode, BOND_MODES)
        if i.bond.miimon is not None:
            _range(f"{p}.bond.miimon", i.bond.miimon, 0, 2**31 - 1)
        if i.bond.lacp_rate is not None:
            _choice(f"{p}.bond.lacp_rate", i.bond.lacp_rate, LACP_RATES)
            if i.bond.mode != "802.3ad":
                raise InvalidArgument(f"{p}.bond.lacp_rate", "applies to mode 802.3ad only")
        if i.bond.xmit_hash_policy is not None:
            _choice(f"{p}.bond.xmit_hash_policy", i.bond.xmit_hash_policy, XMIT_HASH_POLICIES)
    if i.bridge:
        for k, port in enumerate(i.bridge.ports):
            for v, vid in enumerate(port.vlans):
                _range(f"{p}.bridge.ports[{k}].vlans[{v}]", vid, 1, 4094)
            if port.pvid is not None:
                _range(f"{p}.bridge.ports[{k}].pvid", port.pvid, 1, 4094)
            if (port.vlans or port.pvid is not None) and i.bridge.vlan_filtering is False:
                raise InvalidArgument(f"{p}.bridge.ports[{k}]", "has VLANs but the bridge does not filter VLANs")
    base_path = None
    if i.vlan:
        _range(f"{p}.vlan.id", i.vlan.id, 1, 4094)
        _choice(f"{p}.vlan.protocol", i.vlan.protocol, VLAN_PROTOCOLS)
        base_path = f"{p}.vlan.base_iface"
    if i.macvlan:
        _choice(f"{p}.macvlan.mode", i.macvlan.mode, MACVLAN_MODES)
        base_path = f"{p}.macvlan.base_iface"
    if i.vxlan:
        v = i.vxlan
        _range(f"{p}.vxlan.id", v.id, 1, VNI_MAX)
        _range(f"{p}.vxlan.destination_port", v.destination_port, 1, 65535)
        if v.remote and v.group:
            raise InvalidArgument(f"{p}.vxlan.group", "remote and group exclude each other")
        versions = set()
        for key in ("local", "remote", "group"):
            value = getattr(v, key)
            if value:
                ip = _ip(f"{p}.vxlan.{key}", value)
                if key == "group" and not ip.is_multicast:
                    raise InvalidArgument(f"{p}.vxlan.group", f"{quote(value)} is not a multicast address")
                if key == "remote" and ip.is_multicast:
                    raise InvalidArgument(f"{p}.vxlan.remote", f"{quote(value)} is multicast: use group")
                versions.add(ip.version)
                if len(versions) > 1:
                    raise InvalidArgument(f"{p}.vxlan.{key}", "mixes IPv4 and IPv6 with the other addresses")
        if v.base_iface:
            base_path = f"{p}.vxlan.base_iface"
    if base_path is not None:
        base = i.base()
        check_name(base_path, base)
        if base == i.name:
            raise InvalidArgument(base_path, f"{quote(base)} cannot be its own base")
        if not exists(base):
            raise InvalidArgument(base_path, f"{quote(base)} is neither declared nor present")
        if i.vlan and i.mtu is not None:
            declared = desired_by.get(base)
            base_mtu = declared.mtu if declared is not None and declared.mtu is not None else (
                live_by[base].mtu if base in live_by else None)
            if base_mtu is not None and i.mtu > base_mtu:
                raise InvalidArgument(f"{p}.mtu", f"{i.mtu} is above the MTU of its base {base} ({base_mtu})")
    if i.veth:
        check_name(f"{p}.veth.peer", i.veth.peer)
        if i.veth.peer == i.name:
            raise InvalidArgument(f"{p}.veth.peer", "cannot be the interface itself")
        other = desired_by.get(i.veth.peer)
        if other is not None and other.state != "absent" and (other.veth is None or other.veth.peer != i.name):
            raise InvalidArgument(f"{p}.veth.peer", f"{quote(i.veth.peer)} is declared but not as this one's peer")
        have = live_by.get(i.veth.peer)
        if have is not None and not (have.veth and have.veth.peer == i.name) and i.name not in live_by:
            raise InvalidArgument(f"{p}.veth.peer", f"{quote(i.veth.peer)} already exists")


def _cycles(desired: NetworkState) -> None:
    """A bond inside itself, a bridge that is a port of its own port, a VLAN
    stacked on what stacks on it: the path names the interface that closes it."""
    index = {i.name: n for n, i in enumerate(desired.interfaces)}
    edges: dict[str, list[str]] = {}
    for i in desired.interfaces:
        if i.state == "absent":
            continue
        edges.setdefault(i.name, []).extend(_ports(i))
        if i.base():
            edges[i.name].append(i.base())  # type: ignore[arg-type]
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for m in edges.get(n, ()):
            if state.get(m) == 1:
                loop = trail[trail.index(m):] + [n, m] if m in trail else [n, m]
                raise InvalidArgument(f"interfaces[{index[n]}]", "forms a cycle: " + " -> ".join(loop))
            if state.get(m) is None:
                visit(m, trail + [n])
        state[n] = 2
    for n in list(edges):
        if state.get(n) is None:
            visit(n, [])


def _routes(desired: NetworkState, live: NetworkState, exists) -> None:
    if not desired.routes:
        return
    networks: dict[str, list] = {}   # interface -> networks it reaches (desired addresses win)
    declared = desired.by_name()
    live_by = live.by_name()
    for i in live.interfaces:
        if i.name not in declared:
            networks[i.name] = [ipaddress.ip_interface(f"{a.ip}/{a.prefix_length}").network for a in i.ipv4 + i.ipv6]
    for i in desired.interfaces:
        if i.state == "absent":
            continue
        have = live_by.get(i.name)
        v4 = i.ipv4 if i.ipv4_managed else (have.ipv4 if have else ())
        v6 = i.ipv6 if i.ipv6_managed else (have.ipv6 if have else ())
        networks[i.name] = [ipaddress.ip_interface(f"{a.ip}/{a.prefix_length}").network for a in v4 + v6]
    seen: dict[tuple, int] = {}
    for n, r in enumerate(desired.routes):
        p = f"routes[{n}]"
        _choice(f"{p}.state", r.state, ("present", "absent"))
        try:
            dest = ipaddress.ip_network(r.destination, strict=True)
        except ValueError:
            raise InvalidArgument(f"{p}.destination", f"{quote(r.destination)} is not a network in CIDR form "
                                                      "(host bits zero)") from None
        if r.metric is not None:
            _range(f"{p}.metric", r.metric, 0, 2**32 - 1)
        if r.table is not None:
            _range(f"{p}.table", r.table, 1, 2**32 - 1)
            if r.table in (253, 255):
                raise InvalidArgument(f"{p}.table", f"{r.table} is a kernel table (default/local)")
        if r.next_hop_interface is not None and not exists(r.next_hop_interface):
            raise InvalidArgument(f"{p}.next_hop_interface", f"{quote(r.next_hop_interface)} is neither "
                                                             "declared nor present")
        if r.gateway is None and r.next_hop_interface is None and r.state == "present":
            raise InvalidArgument(f"{p}.gateway", "a route needs a gateway or a next_hop_interface")
        if r.gateway is not None:
            gw = _ip(f"{p}.gateway", r.gateway, dest.version)
            if r.state == "present" and not (gw.version == 6 and gw.is_link_local and r.next_hop_interface):
                via = [r.next_hop_interface] if r.next_hop_interface else list(networks)
                if not any(gw in net for name in via for net in networks.get(name, ())):
                    where = f"through {r.next_hop_interface}" if r.next_hop_interface else "through any interface"
                    raise InvalidArgument(f"{p}.gateway", f"{r.gateway} is not reachable {where} "
                                                          "(no address in its network)")
        key = r.key()
        if key in seen:
            raise InvalidArgument(f"{p}", f"duplicates routes[{seen[key]}]")
        seen[key] = n
