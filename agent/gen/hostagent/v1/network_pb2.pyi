import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from agent.gen.hostagent.v1 import operations_pb2 as _operations_pb2
from agent.gen.hostagent.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InterfaceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERFACE_TYPE_UNSPECIFIED: _ClassVar[InterfaceType]
    INTERFACE_TYPE_ETHERNET: _ClassVar[InterfaceType]
    INTERFACE_TYPE_BOND: _ClassVar[InterfaceType]
    INTERFACE_TYPE_BRIDGE: _ClassVar[InterfaceType]
    INTERFACE_TYPE_VLAN: _ClassVar[InterfaceType]
    INTERFACE_TYPE_VXLAN: _ClassVar[InterfaceType]
    INTERFACE_TYPE_VETH: _ClassVar[InterfaceType]
    INTERFACE_TYPE_DUMMY: _ClassVar[InterfaceType]
    INTERFACE_TYPE_MACVLAN: _ClassVar[InterfaceType]
    INTERFACE_TYPE_LOOPBACK: _ClassVar[InterfaceType]

class InterfaceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERFACE_STATE_UNSPECIFIED: _ClassVar[InterfaceState]
    INTERFACE_STATE_UP: _ClassVar[InterfaceState]
    INTERFACE_STATE_DOWN: _ClassVar[InterfaceState]
    INTERFACE_STATE_ABSENT: _ClassVar[InterfaceState]
INTERFACE_TYPE_UNSPECIFIED: InterfaceType
INTERFACE_TYPE_ETHERNET: InterfaceType
INTERFACE_TYPE_BOND: InterfaceType
INTERFACE_TYPE_BRIDGE: InterfaceType
INTERFACE_TYPE_VLAN: InterfaceType
INTERFACE_TYPE_VXLAN: InterfaceType
INTERFACE_TYPE_VETH: InterfaceType
INTERFACE_TYPE_DUMMY: InterfaceType
INTERFACE_TYPE_MACVLAN: InterfaceType
INTERFACE_TYPE_LOOPBACK: InterfaceType
INTERFACE_STATE_UNSPECIFIED: InterfaceState
INTERFACE_STATE_UP: InterfaceState
INTERFACE_STATE_DOWN: InterfaceState
INTERFACE_STATE_ABSENT: InterfaceState

class GetNetworkStateRequest(_message.Message):
    __slots__ = ("managed_only",)
    MANAGED_ONLY_FIELD_NUMBER: _ClassVar[int]
    managed_only: bool
    def __init__(self, managed_only: _Optional[bool] = ...) -> None: ...

class GetNetworkStateResponse(_message.Message):
    __slots__ = ("state", "nmstate", "confirm_deadline")
    STATE_FIELD_NUMBER: _ClassVar[int]
    NMSTATE_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    state: NetworkState
    nmstate: str
    confirm_deadline: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[NetworkState, _Mapping]] = ..., nmstate: _Optional[str] = ..., confirm_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NetworkState(_message.Message):
    __slots__ = ("interfaces", "routes")
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    interfaces: _containers.RepeatedCompositeFieldContainer[NetworkInterface]
    routes: _containers.RepeatedCompositeFieldContainer[NetworkRoute]
    def __init__(self, interfaces: _Optional[_Iterable[_Union[NetworkInterface, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[NetworkRoute, _Mapping]]] = ...) -> None: ...

class NetworkInterface(_message.Message):
    __slots__ = ("name", "type", "state", "mtu", "mac", "ipv4", "ipv6", "managed", "protected", "controller", "bond", "bridge", "vlan", "vxlan", "veth", "macvlan")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    MANAGED_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_FIELD_NUMBER: _ClassVar[int]
    BOND_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    VXLAN_FIELD_NUMBER: _ClassVar[int]
    VETH_FIELD_NUMBER: _ClassVar[int]
    MACVLAN_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: InterfaceType
    state: InterfaceState
    mtu: int
    mac: str
    ipv4: _containers.RepeatedCompositeFieldContainer[IpAddress]
    ipv6: _containers.RepeatedCompositeFieldContainer[IpAddress]
    managed: bool
    protected: bool
    controller: str
    bond: BondOptions
    bridge: BridgeOptions
    vlan: VlanOptions
    vxlan: VxlanOptions
    veth: VethOptions
    macvlan: MacvlanOptions
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[InterfaceType, str]] = ..., state: _Optional[_Union[InterfaceState, str]] = ..., mtu: _Optional[int] = ..., mac: _Optional[str] = ..., ipv4: _Optional[_Iterable[_Union[IpAddress, _Mapping]]] = ..., ipv6: _Optional[_Iterable[_Union[IpAddress, _Mapping]]] = ..., managed: _Optional[bool] = ..., protected: _Optional[bool] = ..., controller: _Optional[str] = ..., bond: _Optional[_Union[BondOptions, _Mapping]] = ..., bridge: _Optional[_Union[BridgeOptions, _Mapping]] = ..., vlan: _Optional[_Union[VlanOptions, _Mapping]] = ..., vxlan: _Optional[_Union[VxlanOptions, _Mapping]] = ..., veth: _Optional[_Union[VethOptions, _Mapping]] = ..., macvlan: _Optional[_Union[MacvlanOptions, _Mapping]] = ...) -> None: ...

class IpAddress(_message.Message):
    __slots__ = ("ip", "prefix_length")
    IP_FIELD_NUMBER: _ClassVar[int]
    PREFIX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ip: str
    prefix_length: int
    def __init__(self, ip: _Optional[str] = ..., prefix_length: _Optional[int] = ...) -> None: ...

class BondOptions(_message.Message):
    __slots__ = ("mode", "miimon", "lacp_rate", "xmit_hash_policy", "ports")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MIIMON_FIELD_NUMBER: _ClassVar[int]
    LACP_RATE_FIELD_NUMBER: _ClassVar[int]
    XMIT_HASH_POLICY_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    miimon: int
    lacp_rate: str
    xmit_hash_policy: str
    ports: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mode: _Optional[str] = ..., miimon: _Optional[int] = ..., lacp_rate: _Optional[str] = ..., xmit_hash_policy: _Optional[str] = ..., ports: _Optional[_Iterable[str]] = ...) -> None: ...

class BridgeOptions(_message.Message):
    __slots__ = ("stp", "vlan_filtering", "ports")
    STP_FIELD_NUMBER: _ClassVar[int]
    VLAN_FILTERING_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    stp: bool
    vlan_filtering: bool
    ports: _containers.RepeatedCompositeFieldContainer[BridgePort]
    def __init__(self, stp: _Optional[bool] = ..., vlan_filtering: _Optional[bool] = ..., ports: _Optional[_Iterable[_Union[BridgePort, _Mapping]]] = ...) -> None: ...

class BridgePort(_message.Message):
    __slots__ = ("name", "pvid", "vlans")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PVID_FIELD_NUMBER: _ClassVar[int]
    VLANS_FIELD_NUMBER: _ClassVar[int]
    name: str
    pvid: int
    vlans: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., pvid: _Optional[int] = ..., vlans: _Optional[_Iterable[int]] = ...) -> None: ...

class VlanOptions(_message.Message):
    __slots__ = ("base_iface", "id", "protocol")
    BASE_IFACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    base_iface: str
    id: int
    protocol: str
    def __init__(self, base_iface: _Optional[str] = ..., id: _Optional[int] = ..., protocol: _Optional[str] = ...) -> None: ...

class VxlanOptions(_message.Message):
    __slots__ = ("id", "local", "remote", "destination_port", "learning", "base_iface", "group")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    LEARNING_FIELD_NUMBER: _ClassVar[int]
    BASE_IFACE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    id: int
    local: str
    remote: str
    destination_port: int
    learning: bool
    base_iface: str
    group: str
    def __init__(self, id: _Optional[int] = ..., local: _Optional[str] = ..., remote: _Optional[str] = ..., destination_port: _Optional[int] = ..., learning: _Optional[bool] = ..., base_iface: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class VethOptions(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: str
    def __init__(self, peer: _Optional[str] = ...) -> None: ...

class MacvlanOptions(_message.Message):
    __slots__ = ("base_iface", "mode")
    BASE_IFACE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    base_iface: str
    mode: str
    def __init__(self, base_iface: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class NetworkRoute(_message.Message):
    __slots__ = ("destination", "next_hop_address", "next_hop_interface", "metric", "table_id")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_INTERFACE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    destination: str
    next_hop_address: str
    next_hop_interface: str
    metric: int
    table_id: int
    def __init__(self, destination: _Optional[str] = ..., next_hop_address: _Optional[str] = ..., next_hop_interface: _Optional[str] = ..., metric: _Optional[int] = ..., table_id: _Optional[int] = ...) -> None: ...

class ApplyNetworkConfigRequest(_message.Message):
    __slots__ = ("request_id", "desired", "dry_run", "confirm_timeout", "force")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    desired: str
    dry_run: bool
    confirm_timeout: _duration_pb2.Duration
    force: bool
    def __init__(self, request_id: _Optional[str] = ..., desired: _Optional[str] = ..., dry_run: _Optional[bool] = ..., confirm_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class ApplyNetworkConfigResponse(_message.Message):
    __slots__ = ("plan", "operation")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    plan: NetworkPlan
    operation: _operations_pb2.Operation
    def __init__(self, plan: _Optional[_Union[NetworkPlan, _Mapping]] = ..., operation: _Optional[_Union[_operations_pb2.Operation, _Mapping]] = ...) -> None: ...

class NetworkPlan(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[PlanStep]
    def __init__(self, steps: _Optional[_Iterable[_Union[PlanStep, _Mapping]]] = ...) -> None: ...

class PlanStep(_message.Message):
    __slots__ = ("action", "target", "detail")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    action: str
    target: str
    detail: str
    def __init__(self, action: _Optional[str] = ..., target: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ConfirmNetworkConfigRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class RollbackNetworkConfigRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...
