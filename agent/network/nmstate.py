"""nmstate's state format (YAML or JSON) to and from :mod:`agent.network.model`.

Only the subset in :data:`SUPPORTED_KEYS` is accepted; any other key is an
:class:`~agent.errors.InvalidArgument` naming its path (``interfaces[2].bridge.options.hello-time``),
because a silently ignored key is a setting the operator believes is applied.
Pure: no kernel access (the parser is tested on documents alone).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any, Mapping

from agent.errors import QUOTE_MAX, InvalidArgument, quote
from agent.network.model import (Address, Bond, Bridge, BridgePort, Interface, Macvlan, NetworkState,
                                 Route, Veth, Vlan, Vxlan)

MAX_DOCUMENT = 1 << 20  # bytes of YAML/JSON accepted (a config of thousands of interfaces fits)
MAX_VALUES = 200_000    # scalars, lists and mappings in it, aliases expanded

# nmstate's type names <-> the model's kinds.
_TYPES = {"ethernet": "ethernet", "bond": "bond", "linux-bridge": "bridge", "vlan": "vlan",
          "vxlan": "vxlan", "veth": "veth", "dummy": "dummy", "mac-vlan": "macvlan",
          "loopback": "loopback", "unknown": "unknown"}
_NM_TYPE = {v: k for k, v in _TYPES.items()}

# (nmstate key path, model field, note): the supported subset, as data so that
# the docs table (docs/network.md) and the CLI render the same list.
SUPPORTED_KEYS: tuple[tuple[str, str, str], ...] = (
    ("interfaces[].name", "Interface.name", "at most 15 bytes; letters, digits, . - _"),
    ("interfaces[].type", "Interface.type",
     "ethernet, loopback, unknown (existing only: configured, never created); bond, linux-bridge, vlan, vxlan, "
     "veth, dummy, mac-vlan"),
    ("interfaces[].state", "Interface.state", "up, down, absent"),
    ("interfaces[].mtu", "Interface.mtu", "68-65536 (the driver may cap it lower); a VLAN's not above its base's"),
    ("interfaces[].mac-address", "Interface.mac", "not for vlan/macvlan ports of a bond"),
    ("interfaces[].controller", "Interface.controller", "must agree with the bond/bridge port list"),
    ("interfaces[].protected", "Interface.protected", "hostagent extension: never removed or taken down without force"),
    ("interfaces[].ipv4.enabled / ipv6.enabled", "Interface.ipv4/ipv6", "false: no addresses of that family"),
    ("interfaces[].ipv4.dhcp / ipv6.dhcp / ipv6.autoconf", "-", "only false (static addressing only)"),
    ("interfaces[].ipv4.address[].ip / .prefix-length", "Address", "omitting ipv4 leaves the addresses alone"),
    ("interfaces[].link-aggregation.mode", "Bond.mode", "balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb"),
    ("interfaces[].link-aggregation.port[]", "Bond.ports", "'ports' is accepted as nmstate's alias"),
    ("interfaces[].link-aggregation.options.miimon", "Bond.miimon", ""),
    ("interfaces[].link-aggregation.options.lacp_rate", "Bond.lacp_rate", "slow, fast (802.3ad)"),
    ("interfaces[].link-aggregation.options.xmit_hash_policy", "Bond.xmit_hash_policy", ""),
    ("interfaces[].bridge.options.stp.enabled", "Bridge.stp", ""),
    ("interfaces[].bridge.options.vlan-filtering", "Bridge.vlan_filtering",
     "hostagent extension; default: on when any port has a vlan section (as nmstate)"),
    ("interfaces[].bridge.port[].name", "BridgePort.name", ""),
    ("interfaces[].bridge.port[].vlan.mode / tag / enable-native", "BridgePort.pvid", "access: tag is the untagged PVID"),
    ("interfaces[].bridge.port[].vlan.trunk-tags[].id / id-range.min / id-range.max", "BridgePort.vlans", "tagged VIDs"),
    ("interfaces[].vlan.base-iface / id / protocol", "Vlan", "id 1-4094; protocol 802.1q or 802.1ad"),
    ("interfaces[].vxlan.id / base-iface / local / remote / destination-port / learning", "Vxlan",
     "id 1-16777215; a multicast remote is the group"),
    ("interfaces[].veth.peer", "Veth.peer", "the peer is created in the same namespace"),
    ("interfaces[].mac-vlan.base-iface / mode", "Macvlan", ""),
    ("routes.config[].destination / next-hop-address / next-hop-interface / metric / table-id / state",
     "Route", "state: absent removes the route"),
)


class _Doc:
    """A mapping read key by key; :meth:`done` fails on any key nobody read."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise InvalidArgument(path or "document", f"must be a mapping, not {type(value).__name__}")
        self.value, self.path, self.seen = value, path, set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple = object, default: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.value or self.value[key] is None:
            return default
        value = self.value[key]
        # bool is an int in Python: "mtu: true" must not read as 1.
        if kind is not object and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise InvalidArgument(self.at(key), f"must be {names}, not {quote(value)}")
        return value

    def sub(self, key: str) -> _Doc | None:
        value = self.get(key)
        return None if value is None else _Doc(value, self.at(key))

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.get(key, list, [])
        return [(f"{self.at(key)}[{i}]", v) for i, v in enumerate(value)]

    def done(self) -> None:
        for key in self.value:
            if key not in self.seen:
                name = str(key)
                if len(name) > QUOTE_MAX:  # the key is the caller's input too: quoted at most 100 characters
                    name = f"{name[:QUOTE_MAX]}... ({len(name)} characters)"
                raise InvalidArgument(self.at(name), "is not supported by hostagent (see docs/network.md)")


def parse_document(text: str | bytes) -> NetworkState:
    """A YAML or JSON nmstate document (JSON is YAML) to a :class:`NetworkState`."""
    import yaml  # only the apply path needs it

    if len(text) > MAX_DOCUMENT:
        raise InvalidArgument("document", f"is {len(text)} bytes, above the {MAX_DOCUMENT} accepted")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidArgument("document", f"is not valid YAML/JSON{where}") from None
    _bounded(doc)
    return from_nmstate(doc if doc is not None else {})


def _bounded(doc: Any) -> None:
    """YAML aliases let 1 MB stand for billions of values; the walk stops
    counting at :data:`MAX_VALUES`."""
    count, stack = 0, [doc]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InvalidArgument("document", f"holds more than {MAX_VALUES} values (with YAML aliases expanded)")
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def from_nmstate(doc: Mapping) -> NetworkState:
    top = _Doc(doc, "")
    interfaces = tuple(_interface(_Doc(v, p)) for p, v in top.items("interfaces"))
    routes: tuple[Route, ...] = ()
    r = top.sub("routes")
    if r is not None:
        routes = tuple(_route(_Doc(v, p)) for p, v in r.items("config"))
        r.get("running")  # what `show` prints beside config; informational, never applied
        r.done()
    h = top.sub("hostagent")  # what `show` adds: {managed: [...]}; informational
    if h is not None:
        h.get("managed", list)
        h.done()
    top.done()
    return _with_controllers(NetworkState(interfaces=interfaces, routes=routes))


def _with_controllers(state: NetworkState) -> NetworkState:
    """Fill each port's ``controller`` from its bond/bridge port list (nmstate
    lets either side say it; the model carries both)."""
    owner: dict[str, str] = {}
    for iface in state.interfaces:
        ports = (iface.bond.ports if iface.bond else ()) + tuple(
            p.name for p in (iface.bridge.ports if iface.bridge else ()))
        for port in ports:
            owner.setdefault(port, iface.name)
    out = []
    for i, iface in enumerate(state.interfaces):
        if iface.controller is None and iface.name in owner:
            iface = Interface(**{**iface.__dict__, "controller": owner[iface.name]})
        out.append(iface)
    return NetworkState(interfaces=tuple(out), routes=state.routes)


def _interface(d: _Doc) -> Interface:
    name = d.get("name", str)
    if name is None:
        raise InvalidArgument(d.at("name"), "is required")
    nm_type = d.get("type", str, "ethernet")
    if nm_type not in _TYPES:
        raise InvalidArgument(d.at("type"), f"{quote(nm_type)} is not supported; one of {', '.join(_TYPES)}")
    kind = _TYPES[nm_type]
    fields: dict[str, Any] = dict(name=name, type=kind, state=d.get("state", str, "up"),
                                  mtu=d.get("mtu", int), mac=d.get("mac-address", str),
                                  controller=d.get("controller", str), protected=d.get("protected", bool, False))
    for family in ("ipv4", "ipv6"):
        sub = d.sub(family)
        if sub is None:
            fields[f"{family}_managed"] = False
            continue
        enabled = sub.get("enabled", bool, True)
        for flag in ("dhcp", "autoconf") if family == "ipv6" else ("dhcp",):
            if sub.get(flag, bool, False):
                raise InvalidArgument(sub.at(flag), "only static addressing is supported (false)")
        addrs = []
        for p, v in sub.items("address"):
            a = _Doc(v, p)
            addrs.append(Address(ip=a.get("ip", str, ""), prefix_length=a.get("prefix-length", int, -1)))
            a.done()
        if addrs and not enabled:
            raise InvalidArgument(sub.at("address"), "given while enabled is false")
        fields[family] = tuple(addrs)
        sub.done()
    section = {"bond": "link-aggregation", "bridge": "bridge", "vlan": "vlan", "vxlan": "vxlan",
               "veth": "veth", "macvlan": "mac-vlan"}
    for key in section.values():
        if key in d.value and section.get(kind) != key:
            raise InvalidArgument(d.at(key), f"does not belong to an interface of type {nm_type}")
    sub = d.sub(section[kind]) if kind in section else None
    if sub is not None:
        fields[kind] = _OPTIONS[kind](sub)
        sub.done()
    elif kind in section and fields["state"] != "absent":
        raise InvalidArgument(d.at(section[kind]), f"is required for type {nm_type}")
    d.done()
    return Interface(**fields)


def _bond(d: _Doc) -> Bond:
    ports = [v for _, v in d.items("port")] + [v for _, v in d.items("ports")]
    for i, p in enumerate(ports):
        if not isinstance(p, str):
            raise InvalidArgument(d.at(f"port[{i}]"), "must be an interface name")
    o = d.sub("options") or _Doc({}, d.at("options"))
    bond = Bond(mode=d.get("mode", str, "balance-rr"), ports=tuple(ports), miimon=o.get("miimon", int),
                lacp_rate=o.get("lacp_rate", (str, int)), xmit_hash_policy=o.get("xmit_hash_policy", str))
    if isinstance(bond.lacp_rate, int):  # nmstate shows 0/1 too
        bond = Bond(**{**bond.__dict__, "lacp_rate": ("slow", "fast")[bond.lacp_rate == 1]})
    o.done()
    return bond


def _bridge(d: _Doc) -> Bridge:
    o = d.sub("options") or _Doc({}, d.at("options"))
    stp_doc = o.sub("stp")
    stp = None
    if stp_doc is not None:
        stp = stp_doc.get("enabled", bool)
        stp_doc.done()
    filtering = o.get("vlan-filtering", bool)
    o.done()
    ports = []
    for p, v in d.items("port"):
        pd = _Doc(v, p)
        name = pd.get("name", str)
        if name is None:
            raise InvalidArgument(pd.at("name"), "is required")
        vd = pd.sub("vlan")
        port = BridgePort(name=name)
        if vd is not None:
            port = _port_vlans(vd, name)
            vd.done()
        pd.done()
        ports.append(port)
    if filtering is None and any(p.vlans_managed for p in ports):
        filtering = True
    return Bridge(stp=stp, vlan_filtering=filtering, ports=tuple(ports))


def _port_vlans(vd: _Doc, name: str) -> BridgePort:
    mode = vd.get("mode", str, "trunk")
    tag = vd.get("tag", int)
    native = vd.get("enable-native", bool, False)
    vids: list[int] = []
    for p, v in vd.items("trunk-tags"):
        t = _Doc(v, p)
        vid = t.get("id", int)
        rng = t.sub("id-range")
        if rng is not None:
            lo, hi = rng.get("min", int, 0), rng.get("max", int, -1)
            rng.done()
            if not 1 <= lo <= hi <= 4094:
                raise InvalidArgument(rng.path, f"must be 1 <= min <= max <= 4094, not {lo}-{hi}")
            vids.extend(range(lo, hi + 1))
        elif vid is not None:
            if not 1 <= vid <= 4094:  # here, with the document's index (ranges shift the model's)
                raise InvalidArgument(t.at("id"), f"{vid} is not in 1-4094")
            vids.append(vid)
        else:
            raise InvalidArgument(p, "needs id or id-range")
        t.done()
    if mode == "access":
        if vids:
            raise InvalidArgument(vd.at("trunk-tags"), "not allowed in access mode")
        return BridgePort(name=name, pvid=tag, vlans_managed=True)
    if mode != "trunk":
        raise InvalidArgument(vd.at("mode"), f"{quote(mode)} is not trunk or access")
    return BridgePort(name=name, vlans=tuple(vids), pvid=tag if native else None, vlans_managed=True)


def _vlan(d: _Doc) -> Vlan:
    return Vlan(base_iface=d.get("base-iface", str, ""), id=d.get("id", int, 0),
                protocol=d.get("protocol", str, "802.1q").lower())


def _vxlan(d: _Doc) -> Vxlan:
    remote, group = d.get("remote", str), None
    try:
        if remote and ipaddress.ip_address(remote).is_multicast:
            remote, group = None, remote
    except ValueError:
        pass  # validation names the bad address
    return Vxlan(id=d.get("id", int, 0), base_iface=d.get("base-iface", str), local=d.get("local", str),
                 remote=remote, group=group, destination_port=d.get("destination-port", int, 4789),
                 learning=d.get("learning", bool, True))


def _veth(d: _Doc) -> Veth:
    return Veth(peer=d.get("peer", str, ""))


def _macvlan(d: _Doc) -> Macvlan:
    return Macvlan(base_iface=d.get("base-iface", str, ""), mode=d.get("mode", str, "bridge"))


_OPTIONS = {"bond": _bond, "bridge": _bridge, "vlan": _vlan, "vxlan": _vxlan, "veth": _veth, "macvlan": _macvlan}


def _route(d: _Doc) -> Route:
    route = Route(destination=d.get("destination", str, ""), gateway=d.get("next-hop-address", str),
                  next_hop_interface=d.get("next-hop-interface", str), metric=d.get("metric", int),
                  table=d.get("table-id", int), state=d.get("state", str, "present"))
    d.done()
    return route


def to_nmstate(state: NetworkState, managed: frozenset[str] = frozenset()) -> dict:
    """The state as an nmstate document (what `hostagent network show` prints);
    :func:`from_nmstate` reads it back.  ``managed`` names are listed under the
    informational ``hostagent.managed`` key."""
    out = [_nm_interface(i) for i in state.interfaces]
    doc: dict[str, Any] = {"interfaces": out}
    routes = [_nm_route(r) for r in state.routes]
    if routes:
        doc["routes"] = {"config": routes}
    if managed:
        doc["hostagent"] = {"managed": sorted(managed)}
    return doc


def to_text(state: NetworkState, managed: frozenset[str] = frozenset(), fmt: str = "yaml") -> str:
    doc = to_nmstate(state, managed)
    if fmt == "json":
        return json.dumps(doc, indent=2)
    import yaml
    return yaml.safe_dump(doc, sort_keys=False)


def _nm_interface(i: Interface) -> dict:
    # a veth whose peer is in another namespace cannot be re-created from here:
    # shown as the ethernet it is to this namespace
    nm_type = "ethernet" if i.type == "veth" and i.veth is None else _NM_TYPE[i.type]
    d: dict[str, Any] = {"name": i.name, "type": nm_type, "state": i.state}
    if i.mtu is not None:
        d["mtu"] = i.mtu
    if i.mac is not None:
        d["mac-address"] = i.mac
    if i.controller:
        d["controller"] = i.controller
    if i.protected:
        d["protected"] = True
    for family in ("ipv4", "ipv6"):
        if getattr(i, f"{family}_managed"):
            addrs = getattr(i, family)
            d[family] = {"enabled": bool(addrs),
                         "address": [{"ip": a.ip, "prefix-length": a.prefix_length} for a in addrs]}
    if i.bond:
        opts = {k: v for k, v in (("miimon", i.bond.miimon), ("lacp_rate", i.bond.lacp_rate),
                                  ("xmit_hash_policy", i.bond.xmit_hash_policy)) if v is not None}
        d["link-aggregation"] = {"mode": i.bond.mode, "port": list(i.bond.ports), **({"options": opts} if opts else {})}
    if i.bridge:
        opts: dict[str, Any] = {}
        if i.bridge.stp is not None:
            opts["stp"] = {"enabled": i.bridge.stp}
        if i.bridge.vlan_filtering is not None:
            opts["vlan-filtering"] = i.bridge.vlan_filtering
        # the bridge's own VLANs (its "self" entry) follow from its VLAN links
        d["bridge"] = {"options": opts, "port": [_nm_port(p) for p in i.bridge.ports if p.name != i.name]}
    if i.vlan:
        d["vlan"] = {"base-iface": i.vlan.base_iface, "id": i.vlan.id, "protocol": i.vlan.protocol}
    if i.vxlan:
        v = i.vxlan
        d["vxlan"] = {k: x for k, x in (("id", v.id), ("base-iface", v.base_iface), ("local", v.local),
                                        ("remote", v.remote or v.group), ("destination-port", v.destination_port),
                                        ("learning", v.learning)) if x is not None}
    if i.veth:
        d["veth"] = {"peer": i.veth.peer}
    if i.macvlan:
        d["mac-vlan"] = {"base-iface": i.macvlan.base_iface, "mode": i.macvlan.mode}
    return d


def _nm_port(p: BridgePort) -> dict:
    d: dict[str, Any] = {"name": p.name}
    if not p.vlans_managed:
        return d
    if not p.vlans and p.pvid is not None:
        d["vlan"] = {"mode": "access", "tag": p.pvid}
    else:
        vlan: dict[str, Any] = {"mode": "trunk", "trunk-tags": [{"id": v} for v in p.vlans]}
        if p.pvid is not None:
            vlan.update({"enable-native": True, "tag": p.pvid})
        d["vlan"] = vlan
    return d


def _nm_route(r: Route) -> dict:
    d: dict[str, Any] = {"destination": r.destination}
    for key, value in (("next-hop-address", r.gateway), ("next-hop-interface", r.next_hop_interface),
                       ("metric", r.metric), ("table-id", r.table)):
        if value is not None:
            d[key] = value
    if r.state != "present":
        d["state"] = r.state
    return d
