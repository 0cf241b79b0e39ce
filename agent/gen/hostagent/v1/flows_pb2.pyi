import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from agent.gen.hostagent.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_ORDER_UNSPECIFIED: _ClassVar[FlowOrder]
    FLOW_ORDER_BYTES: _ClassVar[FlowOrder]
    FLOW_ORDER_PACKETS: _ClassVar[FlowOrder]

class FlowDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_DIRECTION_UNSPECIFIED: _ClassVar[FlowDirection]
    FLOW_DIRECTION_IN: _ClassVar[FlowDirection]
    FLOW_DIRECTION_OUT: _ClassVar[FlowDirection]
FLOW_ORDER_UNSPECIFIED: FlowOrder
FLOW_ORDER_BYTES: FlowOrder
FLOW_ORDER_PACKETS: FlowOrder
FLOW_DIRECTION_UNSPECIFIED: FlowDirection
FLOW_DIRECTION_IN: FlowDirection
FLOW_DIRECTION_OUT: FlowDirection

class FlowFilter(_message.Message):
    __slots__ = ("interface", "instance", "vni", "has_vni", "address")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    HAS_VNI_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    interface: str
    instance: str
    vni: int
    has_vni: bool
    address: str
    def __init__(self, interface: _Optional[str] = ..., instance: _Optional[str] = ..., vni: _Optional[int] = ..., has_vni: _Optional[bool] = ..., address: _Optional[str] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("window", "top", "order", "filter")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    top: int
    order: FlowOrder
    filter: FlowFilter
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., top: _Optional[int] = ..., order: _Optional[_Union[FlowOrder, str]] = ..., filter: _Optional[_Union[FlowFilter, _Mapping]] = ...) -> None: ...

class WatchFlowsRequest(_message.Message):
    __slots__ = ("query", "interval")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    query: ListFlowsRequest
    interval: _duration_pb2.Duration
    def __init__(self, query: _Optional[_Union[ListFlowsRequest, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FlowVm(_message.Message):
    __slots__ = ("instance_uuid", "instance_name", "domain_name", "project_id", "project_name", "port_prefix")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    instance_name: str
    domain_name: str
    project_id: str
    project_name: str
    port_prefix: str
    def __init__(self, instance_uuid: _Optional[str] = ..., instance_name: _Optional[str] = ..., domain_name: _Optional[str] = ..., project_id: _Optional[str] = ..., project_name: _Optional[str] = ..., port_prefix: _Optional[str] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("interface", "direction", "vlan", "vni", "ethertype", "src", "dst", "protocol", "src_port", "dst_port", "packets", "bytes", "vm")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    ETHERTYPE_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    VM_FIELD_NUMBER: _ClassVar[int]
    interface: str
    direction: FlowDirection
    vlan: int
    vni: int
    ethertype: int
    src: str
    dst: str
    protocol: int
    src_port: int
    dst_port: int
    packets: int
    bytes: int
    vm: FlowVm
    def __init__(self, interface: _Optional[str] = ..., direction: _Optional[_Union[FlowDirection, str]] = ..., vlan: _Optional[int] = ..., vni: _Optional[int] = ..., ethertype: _Optional[int] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., protocol: _Optional[int] = ..., src_port: _Optional[int] = ..., dst_port: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., vm: _Optional[_Union[FlowVm, _Mapping]] = ...) -> None: ...

class SampledInterface(_message.Message):
    __slots__ = ("name", "ifindex", "sampling_rate", "samples", "drops")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    ifindex: int
    sampling_rate: int
    samples: int
    drops: int
    def __init__(self, name: _Optional[str] = ..., ifindex: _Optional[int] = ..., sampling_rate: _Optional[int] = ..., samples: _Optional[int] = ..., drops: _Optional[int] = ...) -> None: ...

class ListFlowsResponse(_message.Message):
    __slots__ = ("flows", "window", "time", "matched_flows", "matched_packets", "matched_bytes", "interfaces")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FLOWS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_PACKETS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    window: _duration_pb2.Duration
    time: _timestamp_pb2.Timestamp
    matched_flows: int
    matched_packets: int
    matched_bytes: int
    interfaces: _containers.RepeatedCompositeFieldContainer[SampledInterface]
    def __init__(self, flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., matched_flows: _Optional[int] = ..., matched_packets: _Optional[int] = ..., matched_bytes: _Optional[int] = ..., interfaces: _Optional[_Iterable[_Union[SampledInterface, _Mapping]]] = ...) -> None: ...
