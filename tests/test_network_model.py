"""The network domain without a kernel: nmstate's format, validation (every
message names the field), plan ordering, and random configs that never crash."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.errors import InvalidArgument
from agent.network import nmstate, paths
from agent.network.model import (Address, Bond, Bridge, BridgePort, Interface, NetworkState, Route, Veth, Vlan,
                                 Vxlan)
from agent.network.plan import compute
from agent.network.validate import validate

LIVE = NetworkState(interfaces=(
    Interface(name="lo", type="loopback", mtu=65536, ipv4=(Address("127.0.0.1", 8),), index=1),
    Interface(name="eth0", type="ethernet", mtu=1500, mac="02:00:00:00:00:01",
              ipv4=(Address("192.0.2.10", 24),), index=2),
    Interface(name="eth1", type="ethernet", mtu=9000, mac="02:00:00:00:00:02", state="down", index=3),
    Interface(name="eth2", type="ethernet", mtu=1500, mac="02:00:00:00:00:03", state="up", index=4),
), routes=(Route("0.0.0.0/0", "192.0.2.1", "eth0", 0, 254, protocol=3),))

TOPOLOGY = """
interfaces:
- name: bond0
  type: bond
  mtu: 9000
  link-aggregation:
    mode: 802.3ad
    port: [eth1, eth2]
    options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer3+4}
- name: br0
  type: linux-bridge
  bridge:
    options: {stp: {enabled: false}}
    port:
    - name: bond0
      vlan: {mode: trunk, trunk-tags: [{id: 100}, {id-range: {min: 200, max: 201}}]}
- name: br0.100
  type: vlan
  vlan: {base-iface: br0, id: 100}
  ipv4: {enabled: true, address: [{ip: 10.100.0.1, prefix-length: 24}]}
- name: vx42
  type: vxlan
  vxlan: {id: 42, local: 192.0.2.10, remote: 192.0.2.20, destination-port: 4789, learning: false}
- name: v0
  type: veth
  veth: {peer: v1}
- name: d0
  type: dummy
  state: down
  ipv6: {enabled: true, address: [{ip: "2001:db8::1", prefix-length: 64}]}
routes:
  config:
  - {destination: 10.200.0.0/16, next-hop-address: 10.100.0.254, metric: 10}
  - {destination: 10.201.0.0/16, next-hop-interface: d0, table-id: 100}
"""


def test_nmstate_document_reads_into_the_model_and_back():
    state = nmstate.parse_document(TOPOLOGY)
    by = state.by_name()
    assert by["bond0"].bond == Bond(mode="802.3ad", ports=("eth1", "eth2"), miimon=100, lacp_rate="fast",
                                    xmit_hash_policy="layer3+4")
    assert by["br0"].bridge == Bridge(stp=False, vlan_filtering=True, ports=(
        BridgePort("bond0", vlans=(100, 200, 201), vlans_managed=True),))
    assert by["bond0"].controller == "br0"
    assert by["br0.100"].vlan == Vlan("br0", 100)
    assert by["vx42"].vxlan == Vxlan(id=42, local="192.0.2.10", remote="192.0.2.20", learning=False)
    assert by["v0"].veth == Veth("v1")
    assert by["d0"].ipv6 == (Address("2001:db8::1", 64),) and not by["d0"].ipv4_managed
    assert state.routes[1] == Route("10.201.0.0/16", None, "d0", None, 100)
    # what `show` prints reads back to the same state
    assert nmstate.from_nmstate(nmstate.to_nmstate(state)) == state
    assert nmstate.parse_document(nmstate.to_text(state, fmt="json")) == state


@pytest.mark.parametrize("doc, path", [
    ("interfaces: [{name: a, type: dummy, description: x}]", "interfaces[0].description"),
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {options: {hello-time: 2}}}]",
     "interfaces[0].bridge.options.hello-time"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {mode: 802.3ad, options: {arp_interval: 1}}}]",
     "interfaces[0].link-aggregation.options.arp_interval"),
    ("interfaces: [{name: a, type: ovs-bridge}]", "interfaces[0].type"),
    ("interfaces: [{name: a, type: dummy, ipv4: {dhcp: true}}]", "interfaces[0].ipv4.dhcp"),
    ("interfaces: [{name: a, type: dummy, mtu: true}]", "interfaces[0].mtu"),
    ("interfaces: [{name: a, type: dummy, vlan: {id: 3}}]", "interfaces[0].vlan"),
    ("routes: {config: [{destination: 10.0.0.0/8, weight: 3}]}", "routes.config[0].weight"),
    ("dns-resolver: {config: {}}", "dns-resolver"),
    ("interfaces: [: :", "document"),
])
def test_unsupported_or_malformed_keys_are_errors_naming_them(doc, path):
    with pytest.raises(InvalidArgument) as err:
        nmstate.parse_document(doc)
    assert err.value.field == path


def test_a_yaml_alias_bomb_is_refused_not_expanded():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(InvalidArgument, match="more than 200000 values") as err:
        nmstate.parse_document(bomb + "interfaces: [*i]\n")
    assert err.value.field == "document"


def test_supported_keys_are_data_for_the_docs_table():
    keys = [k for k, _, _ in nmstate.SUPPORTED_KEYS]
    assert "interfaces[].vlan.base-iface / id / protocol" in keys
    assert all(len(row) == 3 for row in nmstate.SUPPORTED_KEYS)


def _check(doc: str, live: NetworkState = LIVE) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        validate(nmstate.parse_document(doc), live)
    return err.value


@pytest.mark.parametrize("doc, path, words", [
    ("interfaces: [{name: abcdefghijklmnop, type: dummy}]", "interfaces[0].name", "15 bytes"),
    ("interfaces: [{name: 'a/b', type: dummy}]", "interfaces[0].name", "letters"),
    ("interfaces: [{name: d, type: dummy}, {name: d, type: dummy}]", "interfaces[1].name", "interfaces[0]"),
    ("interfaces: [{name: v, type: vlan, vlan: {base-iface: eth0, id: 4095}}]", "interfaces[0].vlan.id", "1-4094"),
    ("interfaces: [{name: v, type: vlan, vlan: {base-iface: eth0, id: 0}}]", "interfaces[0].vlan.id", "1-4094"),
    ("interfaces: [{name: v, type: vlan, vlan: {base-iface: nope, id: 5}}]", "interfaces[0].vlan.base-iface",
     "neither declared nor present"),
    ("interfaces: [{name: v, type: vlan, vlan: {base-iface: eth0, id: 5, protocol: 802.1x}}]",
     "interfaces[0].vlan.protocol", "802.1q"),
    ("interfaces: [{name: x, type: vxlan, vxlan: {id: 16777216}}]", "interfaces[0].vxlan.id", "1-16777215"),
    ("interfaces: [{name: x, type: vxlan, vxlan: {id: 5, local: 10.0.0.1, remote: '2001:db8::2'}}]",
     "interfaces[0].vxlan.remote", "mixes"),
    ("interfaces: [{name: d, type: dummy, mtu: 67}]", "interfaces[0].mtu", "68-65536"),
    ("interfaces: [{name: v, type: vlan, mtu: 1600, vlan: {base-iface: eth0, id: 5}}]", "interfaces[0].mtu",
     "above the MTU of its base eth0 (1500)"),
    ("interfaces: [{name: d, type: dummy, mtu: 1000, ipv6: {address: [{ip: '2001:db8::1', prefix-length: 64}]}}]",
     "interfaces[0].mtu", "1280"),
    ("interfaces: [{name: d, type: dummy, mac-address: '02:00:00'}]", "interfaces[0].mac-address", "MAC"),
    ("interfaces: [{name: d, type: dummy, ipv4: {address: [{ip: '2001:db8::1', prefix-length: 64}]}}]",
     "interfaces[0].ipv4.address[0].ip", "IPv4"),
    ("interfaces: [{name: d, type: dummy, ipv4: {address: [{ip: 10.0.0.1, prefix-length: 33}]}}]",
     "interfaces[0].ipv4.address[0].prefix-length", "1-32"),
    ("interfaces: [{name: d, type: dummy, ipv4: {address: [{ip: 192.0.2.10, prefix-length: 24}]}},"
     " {name: e, type: dummy, ipv4: {address: [{ip: 192.0.2.10, prefix-length: 24}]}}]",
     "interfaces[1].ipv4.address[0].ip", "interfaces[0].ipv4.address[0].ip"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {mode: 802.3ad, port: [eth9]}}]",
     "interfaces[0].link-aggregation.port[0]", "neither declared nor present"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {mode: fastest}}]", "interfaces[0].link-aggregation.mode", "802.3ad"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {mode: balance-rr, options: {lacp_rate: fast}}}]",
     "interfaces[0].link-aggregation.options.lacp_rate", "802.3ad"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {mode: 802.3ad, port: [b]}}]",
     "interfaces[0].link-aggregation.port[0]", "itself"),
    ("interfaces: [{name: b, type: bond, link-aggregation: {port: [eth1]}},"
     " {name: c, type: bond, link-aggregation: {port: [eth1]}}]", "interfaces[1].link-aggregation.port[0]", "already a port of b"),
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: [{name: br1}]}},"
     " {name: br1, type: linux-bridge, bridge: {port: [{name: br0}]}}]", "interfaces[1]", "cycle: br0 -> br1 -> br0"),
    ("interfaces: [{name: a, type: vlan, vlan: {base-iface: b, id: 2}}, {name: b, type: vlan, vlan: {base-iface: a, id: 3}}]",
     "interfaces[1]", "cycle"),
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: [{name: eth1, vlan: {mode: access, tag: 5000}}]}}]",
     "interfaces[0].bridge.port[0].vlan.tag", "1-4094"),
    ("interfaces: [{name: eth7, type: ethernet}]", "interfaces[0].name", "never created"),
    ("interfaces: [{name: eth1, type: ethernet, state: absent}]", "interfaces[0].state", "use down"),
    ("interfaces: [{name: v0, type: veth, veth: {peer: eth1}}]", "interfaces[0].veth.peer", "already exists"),
    ("interfaces: [{name: eth1, type: ethernet, controller: br9}]", "interfaces[0].controller", "not a declared"),
    ("routes: {config: [{destination: 10.0.0.1/8, next-hop-address: 192.0.2.1}]}", "routes.config[0].destination", "CIDR"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: '2001:db8::1'}]}", "routes.config[0].next-hop-address", "IPv4"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 198.51.100.1}]}", "routes.config[0].next-hop-address",
     "not reachable"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 192.0.2.1, next-hop-interface: eth1}]}",
     "routes.config[0].next-hop-address", "not reachable through eth1"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-interface: eth9}]}", "routes.config[0].next-hop-interface",
     "neither"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 192.0.2.1, table-id: 255}]}", "routes.config[0].table-id",
     "kernel table"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 192.0.2.1},"
     " {destination: 10.0.0.0/8, next-hop-address: 192.0.2.1}]}", "routes.config[1]", "duplicates routes.config[0]"),
])
def test_validation_names_the_field(doc, path, words):
    err = _check(doc)
    assert err.field == path
    assert words in err.message


@pytest.mark.parametrize("doc, path", [
    ("interfaces: [{name: a, type: dummy}, {name: b, type: dummy},"
     " {name: br5, type: linux-bridge, bridge: {port: [{name: nope}]}}]", "interfaces[2].bridge.port[0].name"),
    ("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 198.51.100.1}]}",
     "routes.config[0].next-hop-address"),
    ("interfaces: [{name: a, type: dummy}, {name: v5, type: vlan, vlan: {base-iface: nope, id: 5}}]",
     "interfaces[1].vlan.base-iface"),
    ("interfaces: [{name: m, type: mac-vlan, mac-vlan: {base-iface: eth0, mode: wild}}]",
     "interfaces[0].mac-vlan.mode"),
    ("interfaces: [{name: x, type: vxlan, vxlan: {id: 5, destination-port: 0}}]",
     "interfaces[0].vxlan.destination-port"),
    ("interfaces: [{name: d, type: dummy, ipv6: {address: [{ip: '2001:db8::1', prefix-length: 64},"
     " {ip: '2001:db8::2', prefix-length: 129}]}}]", "interfaces[0].ipv6.address[1].prefix-length"),
    # an id-range before it shifts the model's VID index; the path is the document's entry
    ("interfaces: [{name: br0, type: linux-bridge, bridge: {port: [{name: eth1, vlan: {mode: trunk,"
     " trunk-tags: [{id-range: {min: 10, max: 20}}, {id: 4095}]}}]}}]",
     "interfaces[0].bridge.port[0].vlan.trunk-tags[1].id"),
])
def test_validation_names_the_nmstate_path_not_the_models(doc, path):
    err = _check(doc)
    assert err.field == path
    for model_word in ("ports[", "base_iface", "gateway", "destination_port", "prefix_length", "vlans["):
        assert model_word not in str(err)


def test_paths_in_validation_messages_are_nmstate_ones_too():
    err = _check("interfaces: [{name: b, type: bond, link-aggregation: {port: [eth1]}},"
                 " {name: c, type: bond, link-aggregation: {port: [eth1]}}]")
    assert err.message.endswith("already a port of b (interfaces[0].link-aggregation.port[0])")


def test_a_long_bad_value_is_quoted_to_about_100_characters():
    err = _check("routes: {config: [{destination: 10.0.0.0/8, next-hop-address: '" + "9" * 5000 + "'}]}")
    assert err.field == "routes.config[0].next-hop-address"
    assert "9" * 100 in err.message and "9" * 101 not in err.message and len(str(err)) < 200


def test_a_long_unsupported_key_is_cut_in_the_path():
    with pytest.raises(InvalidArgument) as caught:   # (YAML caps a key at 1024 characters; JSON-like input does not)
        nmstate.from_nmstate({"interfaces": [{"name": "d", "type": "dummy", "k" * 5000: 1}]})
    err = caught.value
    assert err.field.startswith("interfaces[0].kkkk") and "(5000 characters)" in err.field
    assert len(str(err)) < 250


def _model_paths(cls, prefix: str) -> list[str]:
    """Every field path of a model dataclass that a config can set."""
    import dataclasses
    import typing
    live_only = {"index", "ipv4_managed", "ipv6_managed", "vlans_managed", "protocol", "protected"}
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in live_only:
            continue
        path = f"{prefix}.{f.name}" if prefix else f.name
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)]
        if inner:
            many = typing.get_origin(hints[f.name]) is tuple
            out += _model_paths(inner[0], path + ("[0]" if many else ""))
        else:
            out.append(path + ("[0]" if typing.get_origin(hints[f.name]) is tuple else ""))
    return out


def test_every_model_field_has_its_nmstate_path():
    """The drift guard of nmstate_path's table: each field the validator can
    name, translated, ends in a key of SUPPORTED_KEYS (a new model field with
    no row in the table keeps its Python name, which nmstate does not have)."""
    keys = set(re.split(r"[^A-Za-z0-9_\-]+", " ".join(k for k, _, _ in nmstate.SUPPORTED_KEYS)))
    fields = [f"interfaces[0].{p}" for p in _model_paths(Interface, "")] + \
        [f"routes[0].{p}" for p in _model_paths(Route, "")]
    assert "interfaces[0].bridge.ports[0].name" in fields and "routes[0].gateway" in fields
    missing = []
    for p in fields:
        last = paths.nmstate_path(p).split(".")[-1].split("[")[0]
        if last not in keys:
            missing.append(f"{p} -> {paths.nmstate_path(p)}")
    assert not missing, missing


def test_a_gateway_reachable_through_a_declared_address_is_accepted():
    validate(nmstate.parse_document(
        "interfaces: [{name: d, type: dummy, ipv4: {address: [{ip: 10.1.0.1, prefix-length: 24}]}}]\n"
        "routes: {config: [{destination: 10.0.0.0/8, next-hop-address: 10.1.0.254}]}"), LIVE)


def test_plan_orders_by_dependency():
    desired = nmstate.parse_document(TOPOLOGY)
    validate(desired, LIVE)
    steps = compute(desired, LIVE).steps
    text = [s.detail for s in steps]
    pos = {d: i for i, d in enumerate(text)}

    def at(prefix: str) -> int:
        return next(i for i, d in enumerate(text) if d.startswith(prefix))
    assert at("ip link add bond0") < at("ip link set eth1 master bond0") < at("ip link set bond0 up")
    assert at("ip link set eth2 down") < at("ip link set eth2 master bond0")  # a bond takes ports down
    assert at("ip link set eth1 up") < at("ip link set bond0 up")            # ports before the bond
    assert at("ip link add br0 ") < at("ip link add br0.100")                # base before the VLAN
    assert at("ip link set bond0 master br0") < at("bridge vlan add dev bond0 vid 100")
    assert at("bridge vlan del dev bond0 vid 1") < at("ip link set br0 up")  # the default PVID goes
    assert "bridge vlan add dev br0 vid 100 self" in pos                       # the VLAN link's VID on the bridge
    assert at("ip link set br0.100 up") < at("ip addr add 10.100.0.1/24") < at("ip route add 10.200.0.0/16")
    assert not any(d.startswith("ip link set d0 up") for d in text)          # state: down
    # applied, the same config plans nothing
    assert compute(desired, _applied(desired)).empty


def _applied(desired: NetworkState) -> NetworkState:
    """What the kernel reports after ``desired`` (as the backend reads it)."""
    by = LIVE.by_name()
    out = [by["lo"], by["eth0"]]
    for i in desired.interfaces:
        base = by.get(i.name)
        kw = dict(i.__dict__)
        kw.update(mtu=i.mtu or (base.mtu if base else 1500), mac=base.mac if base else "02:aa:00:00:00:01",
                  ipv4_managed=True, ipv6_managed=True)
        if i.bridge:
            kw["bridge"] = Bridge(stp=False, vlan_filtering=True, ports=i.bridge.ports + (
                BridgePort("br0", vlans=(100,), pvid=1, vlans_managed=True),))
        out.append(Interface(**kw))
    out += [Interface(name=p, state="up", mtu=9000, controller="bond0") for p in ("eth1", "eth2")]
    out.append(Interface(name="v1", type="veth", state="up", veth=Veth("v0"), mtu=1500))
    routes = LIVE.routes + tuple(Route(r.destination, r.gateway, r.next_hop_interface or "br0.100",
                                       r.metric or 0, r.table or 254) for r in desired.routes)
    return NetworkState(interfaces=tuple(out), routes=routes)


def test_dropped_and_absent_interfaces_are_removed_only_when_managed():
    live = NetworkState(interfaces=LIVE.interfaces + (
        Interface(name="old0", type="dummy", mtu=1500), Interface(name="theirs", type="dummy", mtu=1500),
        Interface(name="gone0", type="dummy", mtu=1500),
        Interface(name="old0.5", type="vlan", vlan=Vlan("old0", 5), mtu=1500)), routes=LIVE.routes)
    desired = nmstate.parse_document("interfaces: [{name: gone0, type: dummy, state: absent}]")
    text = [s.detail for s in compute(desired, live, managed=frozenset({"old0", "old0.5"})).steps]
    assert sorted(text) == ["ip link del gone0", "ip link del old0", "ip link del old0.5"]  # theirs stays
    assert text.index("ip link del old0.5") < text.index("ip link del old0")  # stacked first


def test_changing_an_immutable_option_recreates_the_link_and_what_sits_on_it():
    live = NetworkState(interfaces=(
        Interface(name="vx", type="vxlan", vxlan=Vxlan(id=1, remote="10.0.0.2"), mtu=1450, index=5),
        Interface(name="mv", type="macvlan", macvlan=None, mtu=1450), ))
    desired = NetworkState(interfaces=(Interface(name="vx", type="vxlan", vxlan=Vxlan(id=2, remote="10.0.0.2")),))
    text = [s.detail for s in compute(desired, live).steps]
    assert text[0] == "ip link del vx" and text[1].startswith("ip link add vx type vxlan id 2")


# -- random configs: nothing but InvalidArgument, ever -------------------------
NAMES = st.sampled_from(["eth0", "eth1", "br0", "bond0", "v0", "v1", "vx0", "d0", "x" * 16, ""])
ADDRS = st.builds(lambda ip, plen: {"ip": ip, "prefix-length": plen},
                  st.sampled_from(["10.0.0.1", "10.0.0.1", "192.0.2.5", "2001:db8::1", "bogus", "300.1.1.1"]),
                  st.integers(-1, 130))
SECTIONS = {
    "bond": st.fixed_dictionaries({"mode": st.sampled_from(["802.3ad", "balance-rr", "nope"]),
                                   "port": st.lists(NAMES, max_size=3)}),
    "linux-bridge": st.fixed_dictionaries({"port": st.lists(st.fixed_dictionaries({"name": NAMES}), max_size=3)}),
    "vlan": st.fixed_dictionaries({"base-iface": NAMES, "id": st.integers(-1, 5000)}),
    "vxlan": st.fixed_dictionaries({"id": st.integers(0, 1 << 25)}, optional={"remote": st.sampled_from(
        ["10.0.0.2", "239.1.1.1", "x"]), "base-iface": NAMES}),
    "veth": st.fixed_dictionaries({"peer": NAMES}),
    "mac-vlan": st.fixed_dictionaries({"base-iface": NAMES, "mode": st.sampled_from(["bridge", "vepa", "z"])}),
    "dummy": st.none(), "ethernet": st.none(),
}
KEYS = {"bond": "link-aggregation", "linux-bridge": "bridge", "mac-vlan": "mac-vlan"}


@st.composite
def documents(draw):
    interfaces = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(sorted(SECTIONS)))
        iface = {"name": draw(NAMES), "type": kind, "state": draw(st.sampled_from(["up", "down", "absent"]))}
        section = draw(SECTIONS[kind])
        if section is not None:
            iface[KEYS.get(kind, kind)] = section
        if draw(st.booleans()):
            iface["mtu"] = draw(st.integers(0, 70000))
        if draw(st.booleans()):
            iface["ipv4"] = {"address": draw(st.lists(ADDRS, max_size=2))}
        interfaces.append(iface)
    routes = draw(st.lists(st.fixed_dictionaries(
        {"destination": st.sampled_from(["10.9.0.0/16", "0.0.0.0/0", "::/0", "10.9.0.1/16", "zz"])},
        optional={"next-hop-address": st.sampled_from(["10.0.0.254", "192.0.2.1", "2001:db8::ff"]),
                  "next-hop-interface": NAMES, "metric": st.integers(-1, 10)}), max_size=3))
    return {"interfaces": interfaces, "routes": {"config": routes}}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_random_configs_are_accepted_or_refused_by_name_never_crash(doc):
    try:
        state = nmstate.from_nmstate(doc)
        validate(state, LIVE)
    except InvalidArgument as err:
        assert err.field and err.message
        return
    compute(state, LIVE)  # a valid config always plans


def test_a_recreated_bond_gets_its_ports_back_and_up():
    live = NetworkState(interfaces=LIVE.interfaces[:2] + (
        Interface(name="bond0", type="bond", bond=Bond(mode="802.3ad", ports=("eth1", "eth2")), mtu=1500),
        Interface(name="eth1", state="up", controller="bond0", mtu=1500),
        Interface(name="eth2", state="up", controller="bond0", mtu=1500)))
    desired = nmstate.parse_document(
        "interfaces: [{name: bond0, type: bond, link-aggregation: {mode: active-backup, port: [eth1, eth2]}}]")
    text = [s.detail for s in compute(desired, live).steps]
    assert text[:2] == ["ip link del bond0", "ip link add bond0 type bond mode active-backup"]
    for port in ("eth1", "eth2"):   # released by the delete (and closed: a bond downs what it lets go)
        assert text.index(f"ip link set {port} master bond0") < text.index(f"ip link set {port} up")
    assert "ip link set eth1 nomaster" not in text


def test_the_journal_survives_as_json_and_a_damaged_one_is_moved_aside(tmp_path):
    from agent.network.journal import Journal, Managed
    journal = Journal(str(tmp_path))
    snap = nmstate.parse_document(TOPOLOGY)
    record = journal.begin("tx1", snap, Managed(), Managed(frozenset({"br0"}), snap.routes), ["ip link add br0"])
    journal.set_phase(record, "awaiting", 123.5)
    again = Journal(str(tmp_path)).load()
    assert again["phase"] == "awaiting" and again["deadline"] == 123.5
    assert Journal.snapshot(again) == snap                      # the snapshot comes back exactly
    journal.save_managed(Managed(frozenset({"br0"}), snap.routes))
    assert journal.managed().interfaces == {"br0"} and journal.managed().routes == snap.routes
    with open(journal.path, "w") as f:
        f.write('{"version": 1, "phase": "apply')             # torn by a crash
    assert journal.load() is None
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]


def test_a_bridge_mtu_is_set_again_after_its_ports_join():
    """A joining port resets the MTU the bridge was created with; the plan
    sets it once the ports are in (and not for a bridge gaining no port)."""
    desired = nmstate.parse_document(
        "interfaces: [{name: br7, type: linux-bridge, mtu: 1400, bridge: {port: [{name: eth2}]}},"
        " {name: br8, type: linux-bridge, mtu: 1400, bridge: {port: []}}]")
    text = [s.detail for s in compute(desired, LIVE).steps]
    assert text.index("ip link set eth2 master br7") < text.index("ip link set br7 mtu 1400")
    assert "ip link set br8 mtu 1400" not in text
