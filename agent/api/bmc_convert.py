"""BMC values <-> ``hostagent.v1`` messages: the only place they meet."""
from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from agent.backends.ipmi_model import BmcIdentity, BootSetting, SelEntry, SensorReading
from agent.bmc.hub import BmcTarget
from agent.gen.hostagent.v1 import bmc_pb2 as pb
from agent.gen.hostagent.v1 import telemetry_pb2

POWER_ACTIONS = {pb.POWER_ACTION_ON: "on", pb.POWER_ACTION_OFF: "off",
                 pb.POWER_ACTION_SOFT: "soft", pb.POWER_ACTION_CYCLE: "cycle",
                 pb.POWER_ACTION_RESET: "reset"}
BOOT_DEVICES = {pb.BOOT_DEVICE_DEFAULT: "default", pb.BOOT_DEVICE_PXE: "pxe",
                pb.BOOT_DEVICE_DISK: "disk", pb.BOOT_DEVICE_CDROM: "cdrom",
                pb.BOOT_DEVICE_BIOS_SETUP: "bios-setup"}
_BOOT_TO_PB = {v: k for k, v in BOOT_DEVICES.items()}
_SEVERITY = {"critical": telemetry_pb2.SEVERITY_CRITICAL, "warning": telemetry_pb2.SEVERITY_WARNING}


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def status_to_proto(t: BmcTarget) -> pb.BmcStatus:
    g = t.guard
    return pb.BmcStatus(target=t.name, address=t.cfg.address, local=t.local, up=g.up is True,
                        last_error=g.last_error, circuit=g.circuit, retry_in=_duration(g.retry_in()),
                        cipher_suite=getattr(t.backend, "cipher_suite", 0),
                        request_latency=_duration(t.latency))


def power_to_proto(target: str, on: bool) -> pb.GetPowerStateResponse:
    return pb.GetPowerStateResponse(target=target,
                                    state=pb.POWER_STATE_ON if on else pb.POWER_STATE_OFF)


def boot_to_proto(target: str, b: BootSetting) -> pb.BootDeviceSetting:
    return pb.BootDeviceSetting(target=target, device=_BOOT_TO_PB.get(b.device, pb.BOOT_DEVICE_DEFAULT),
                                persistent=b.persistent,
                                mode=pb.BOOT_MODE_UEFI if b.uefi else pb.BOOT_MODE_LEGACY)


def sensor_to_proto(s: SensorReading) -> pb.Sensor:
    msg = pb.Sensor(number=s.number, name=s.name, kind=int(s.kind), type=s.type, unit=s.unit,
                    health=int(s.health), states=list(s.states))
    if s.value is not None:
        msg.value = s.value
    return msg


def sel_to_proto(e: SelEntry) -> pb.SelEntry:
    msg = pb.SelEntry(record_id=e.record_id, sensor=e.sensor, sensor_number=e.sensor_number,
                      sensor_type=e.sensor_type, event=e.event,
                      severity=_SEVERITY.get(e.severity, telemetry_pb2.SEVERITY_INFO),
                      deassertion=e.deassertion, raw=e.raw)
    if e.time is not None:
        msg.time.FromSeconds(int(e.time))
    return msg


def info_to_proto(t: BmcTarget, ident: BmcIdentity) -> pb.BmcInfo:
    return pb.BmcInfo(target=t.name, address=t.cfg.address, local=t.local,
                      firmware_version=ident.firmware_version, guid=ident.guid,
                      manufacturer_id=ident.manufacturer_id, product_id=ident.product_id,
                      device_id=ident.device_id, ipmi_version=ident.ipmi_version,
                      fru=pb.FruInfo(**ident.fru))


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts
