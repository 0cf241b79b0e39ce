"""Model field paths (what :mod:`agent.network.validate` checks) to the
nmstate paths the user wrote: the one place the two vocabularies meet.
Validation errors are translated through it (:func:`nmstate_error`), so a
message never names ``bridge.ports[0]`` for what the document calls
``bridge.port[0]``.  Pure."""
from __future__ import annotations

import re

from agent.errors import InvalidArgument

# ``*`` is an index carried over unchanged (the parser keeps list order); a
# field not listed has the same name in both.  tests/test_network_model.py
# checks every model field against SUPPORTED_KEYS, so a new field without a
# row here fails there.
_INTERFACE_PATHS: dict[str, str] = {
    "mac": "mac-address",
    "ipv4[*].ip": "ipv4.address[*].ip", "ipv4[*].prefix_length": "ipv4.address[*].prefix-length",
    "ipv6[*].ip": "ipv6.address[*].ip", "ipv6[*].prefix_length": "ipv6.address[*].prefix-length",
    "bond": "link-aggregation", "bond.mode": "link-aggregation.mode",
    "bond.ports[*]": "link-aggregation.port[*]",
    "bond.miimon": "link-aggregation.options.miimon",
    "bond.lacp_rate": "link-aggregation.options.lacp_rate",
    "bond.xmit_hash_policy": "link-aggregation.options.xmit_hash_policy",
    "bridge.stp": "bridge.options.stp.enabled",
    "bridge.vlan_filtering": "bridge.options.vlan-filtering",
    "bridge.ports[*]": "bridge.port[*]", "bridge.ports[*].name": "bridge.port[*].name",
    "bridge.ports[*].pvid": "bridge.port[*].vlan.tag",
    # trunk-tags' id-range expands to many VIDs, so the model's index is not
    # the document's: the parser checks each id/range itself with the exact path.
    "bridge.ports[*].vlans[*]": "bridge.port[*].vlan.trunk-tags",
    "vlan.base_iface": "vlan.base-iface",
    "vxlan.base_iface": "vxlan.base-iface", "vxlan.destination_port": "vxlan.destination-port",
    "vxlan.group": "vxlan.remote",   # nmstate has no group: a multicast remote is one
    "macvlan": "mac-vlan", "macvlan.mode": "mac-vlan.mode", "macvlan.base_iface": "mac-vlan.base-iface",
}
_ROUTE_PATHS: dict[str, str] = {
    "gateway": "next-hop-address", "next_hop_interface": "next-hop-interface", "table": "table-id",
}
_MODEL_PATH = re.compile(r"(interfaces|routes)\[(\d+)\]((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)")
_INDEX = re.compile(r"\[\d+\]")
# a quoted piece of the caller's input (agent.errors.quote) is never rewritten
_QUOTED_OR_PATH = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|" + _MODEL_PATH.pattern)


def nmstate_path(path: str) -> str:
    """A model field path (``interfaces[2].bridge.ports[0].name``,
    ``routes[0].gateway``) as the nmstate document spells it
    (``interfaces[2].bridge.port[0].name``, ``routes.config[0].next-hop-address``)."""
    m = _MODEL_PATH.fullmatch(path)
    if m is None:
        return path
    top, n, rest = m.group(1), m.group(2), m.group(3).lstrip(".")
    table = _INTERFACE_PATHS if top == "interfaces" else _ROUTE_PATHS
    indexes = _INDEX.findall(rest)
    target = table.get(_INDEX.sub("[*]", rest))
    if target is not None:
        for index in indexes:
            target = target.replace("[*]", index, 1)
        rest = target
    head = f"interfaces[{n}]" if top == "interfaces" else f"routes.config[{n}]"
    return f"{head}.{rest}" if rest else head


def nmstate_error(exc: InvalidArgument) -> InvalidArgument:
    """``exc`` with its field, and every model path in its message (``is
    already interfaces[0]``), in nmstate terms; quoted input is left as is."""
    def sub(m: re.Match) -> str:
        text = m.group(0)
        return text if text[0] in "'\"" else nmstate_path(text)
    return InvalidArgument(nmstate_path(exc.field), _QUOTED_OR_PATH.sub(sub, exc.message))
