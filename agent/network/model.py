"""The desired and the live network state: frozen dataclasses shared by the
parser, the validator, the planner, the engine and the backend.  Defined in
:mod:`agent.backends.netconf_model` (the backend, a lower layer, speaks them
too); this is the name the domain and the API use."""
from agent.backends.netconf_model import (BOND_MODES, CONFIGURE_ONLY_KINDS, KINDS, LACP_RATES, LIVE_ONLY_KINDS, MACVLAN_MODES,
                                          MAIN_TABLE, STATES, VLAN_PROTOCOLS, XMIT_HASH_POLICIES, Address, Bond,
                                          Bridge, BridgePort, Interface, Macvlan, NetworkState, Route, StepFailed, Veth,
                                          Vlan, Vxlan, from_dict, replace, to_dict)

__all__ = ["BOND_MODES", "CONFIGURE_ONLY_KINDS", "KINDS", "LACP_RATES", "LIVE_ONLY_KINDS", "MACVLAN_MODES", "MAIN_TABLE", "STATES",
           "VLAN_PROTOCOLS", "XMIT_HASH_POLICIES", "Address", "Bond", "Bridge", "BridgePort", "Interface",
           "Macvlan", "NetworkState", "Route", "StepFailed", "Veth", "Vlan", "Vxlan", "from_dict", "replace", "to_dict"]
