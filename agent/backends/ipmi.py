"""The IPMI backend: one BMC over IPMI-over-LAN (RMCP+), through pyghmi.

Everything the BMC layer asks of a BMC goes through :class:`BmcBackend`; the
one implementation here, :class:`PyghmiBmc`, turns pyghmi's dicts and
exceptions into ``agent.backends.ipmi_model`` values and three errors:

- :class:`BmcUnreachable`: no answer, or the session was lost (the caller's
  circuit breaker counts it);
- :class:`BmcAuthFailed`: the BMC refused the login (bad user or password,
  or a cipher-suite/IPMI-version policy refusal) — also counted, never retried
  in a loop;
- :class:`BmcCommandFailed`: the BMC answered with an error completion code
  (it is alive; nothing to back off from).

Calls block their thread (pyghmi's synchronous style); isolation, timeouts
and backoff are the caller's (``agent.bmc.guard``).  A backend is used from
one thread at a time.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

from agent.backends.ipmi_model import (BmcIdentity, BootSetting, Health, SelEntry, SelInfo,
                                       SensorKind, SensorReading)
from agent.errors import AgentError, Unavailable
from agent.secrets import Secret

if TYPE_CHECKING:
    from agent.backends.ipmi_session import PolicySession, SessionPolicy


class BmcUnreachable(Unavailable):
    pass


class BmcAuthFailed(Unavailable):
    pass


class BmcCommandFailed(AgentError):
    def __init__(self, what: str, code: int, message: str) -> None:
        super().__init__(f"{what}: the BMC answered {message} (completion code 0x{code:02x})")
        self.code = code


class BmcBackend(Protocol):
    cipher_suite: int  # of the current session; 0 when none

    def abort(self) -> None: ...
    def close(self) -> None: ...
    def sensors(self) -> list[SensorReading]: ...
    def sdr_changed(self) -> bool: ...
    def dcmi_power_watts(self) -> float | None: ...
    def chassis_status(self) -> dict[str, bool]: ...
    def chassis_control(self, action: str) -> None: ...
    def boot_setting(self) -> BootSetting: ...
    def set_boot(self, device: str, persistent: bool, uefi: bool) -> None: ...
    def identify(self, on: bool, seconds: int | None) -> None: ...
    def sel_info(self) -> SelInfo: ...
    def sel_entry(self, record_id: int) -> tuple[int, SelEntry] | None: ...
    def clear_sel(self) -> None: ...
    def identity(self) -> BmcIdentity: ...


CHASSIS_CONTROL = {"off": 0, "on": 1, "cycle": 2, "reset": 3, "soft": 5}
_BOOT_TO_PYGHMI = {"default": "default", "pxe": "network", "disk": "hd", "cdrom": "optical",
                   "bios-setup": "setup"}
_BOOT_FROM_PYGHMI = {v: k for k, v in _BOOT_TO_PYGHMI.items()} | {"safe": "disk",
                                                                   "floppy": "default"}
_KIND_OF_UNIT = {"°C": SensorKind.TEMPERATURE, "RPM": SensorKind.FAN, "V": SensorKind.VOLTAGE,
                 "A": SensorKind.CURRENT, "W": SensorKind.POWER}
PROBE_TIMEOUT = 1.0  # seconds a BMC has to answer the pre-login ping
_NOT_PRESENT = 0xCB  # completion code: requested sensor, data or record not present
_PRIVILEGES = {"user": 2, "operator": 3, "administrator": 4}


def _health(pyghmi_health: int) -> Health:
    if pyghmi_health & 0b110:  # const.Health.Critical | Failed
        return Health.CRITICAL
    if pyghmi_health & 0b1:  # const.Health.Warning
        return Health.WARNING
    return Health.OK


def _severity(pyghmi_health) -> str:
    h = _health(int(pyghmi_health or 0))
    return {Health.CRITICAL: "critical", Health.WARNING: "warning"}.get(h, "info")


class PyghmiBmc:
    """One BMC.  Logs in lazily and again after the session is lost, keeping
    the SDR (read once, re-read only when the BMC's repository changed)."""

    def __init__(self, host: str, port: int, username: str, password: Secret,
                 policy: SessionPolicy | None = None, privilege: str = "administrator") -> None:
        # pyghmi (and the cryptography it uses) loads with the first BMC, not
        # at every start of an agent without [bmc] targets.
        from agent.backends.ipmi_session import SessionPolicy, install_wait_fix, set_policy
        policy = policy if policy is not None else SessionPolicy()
        install_wait_fix()
        self.host, self.port = host, port
        self._user = username.encode()  # bytes: see agent.backends.ipmi_session (2.)
        self._password = password
        self._privlevel = _PRIVILEGES[privilege]
        set_policy(host, port, self._user, policy)
        self._cmd = None
        self._sdr_stamp: bytes | None = None
        self.logins = 0
        self.requests = 0  # IPMI requests sent (for the mean latency)

    # -- session ---------------------------------------------------------
    @property
    def cipher_suite(self) -> int:
        sess = getattr(self._cmd, "ipmi_session", None)
        return sess.cipher_suite if sess is not None and not sess.broken else 0

    def _login(self) -> PolicySession:
        from pyghmi import exceptions

        from agent.backends.ipmi_session import LOGIN_LOCK, PolicySession, probe

        if not probe(self.host, self.port, PROBE_TIMEOUT):
            raise BmcUnreachable(f"no answer from {self.host}:{self.port} (RMCP ping)")
        try:
            with LOGIN_LOCK:  # see agent.backends.ipmi_session (3.)
                    sess = PolicySession(bmc=self.host, userid=self._user,
                                     password=self._password.reveal(), port=self.port,
                                     privlevel=self._privlevel, kg=None)
        except exceptions.IpmiException as exc:
            raise _login_error(str(exc)) from None
        if sess.broken:
            raise _login_error(str(getattr(sess, "errormsg", "") or "login failed"))
        self.logins += 1
        return sess

    def _command(self):
        """The pyghmi Command, logged in."""
        from pyghmi.ipmi import command

        if self._cmd is not None and not self._cmd.ipmi_session.broken:
            if not getattr(self._cmd.ipmi_session, "abandoned", False):
                return self._cmd
            self._cmd.ipmi_session.logout(False)  # logged is 0: no packet, just pyghmi's bookkeeping
        sess = self._login()
        if self._cmd is None:
            # pyghmi's Command finds the logged-in session in its cache (same
            # host, user and password) instead of opening a plain one.
            self._cmd = command.Command(bmc=self.host, userid=self._user,
                                        password=self._password.reveal(), port=self.port,
                                        privlevel=self._privlevel)
            if self._cmd.ipmi_session is not sess:
                raise BmcUnreachable("pyghmi did not reuse the policy session")
        else:  # keep the Command: it holds the SDR and the OEM handler
            self._cmd.ipmi_session = sess
            if self.sdr_changed():
                self._cmd._sdr = None
        return self._cmd

    def abort(self) -> None:
        """Called from another thread when a call outlived its timeout: make
        pyghmi give up its retries (which can last ~20 s after a BMC dies) at
        its next wake-up, so this BMC's worker is free again within about a
        second.  Only flags are set here: pyghmi's own logout would wait for
        the stuck command.  The next call logs in afresh."""
        sess = getattr(self._cmd, "ipmi_session", None)
        if sess is None:
            return
        sess.abandoned = True
        sess.onlogpayload = None
        sess.logging = False
        sess.logged = 0

    def close(self) -> None:
        cmd, self._cmd = self._cmd, None
        if cmd is not None and not cmd.ipmi_session.broken:
            try:
                cmd.ipmi_session.logout()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass

    def _raw(self, what: str, netfn: int, command: int, data=(), allow_missing: bool = False):
        """One IPMI request; the response data as bytes (None for "not
        present" when ``allow_missing``)."""
        from pyghmi import exceptions

        cmd = self._command()
        self.requests += 1
        try:
            rsp = cmd.raw_command(netfn=netfn, command=command, data=data)
        except exceptions.IpmiException as exc:
            raise BmcUnreachable(f"{what}: {exc}") from None
        code = rsp.get("code", 0)
        if code == 0xFFFF or ("error" in rsp and not code):
            raise BmcUnreachable(f"{what}: {rsp.get('error', 'timeout')}")
        if code:
            if allow_missing and code == _NOT_PRESENT:
                return None
            raise BmcCommandFailed(what, code, rsp.get("error", "an error"))
        return bytes(rsp["data"])

    def _call(self, what: str, fn):
        """A pyghmi helper call with the same error mapping as ``_raw``."""
        from pyghmi import exceptions

        cmd = self._command()
        self.requests += 1
        try:
            return fn(cmd)
        except exceptions.IpmiException as exc:
            code = getattr(exc, "ipmicode", 0) or 0
            if code and code != 0xFFFF and not self._broken():
                raise BmcCommandFailed(what, code, str(exc)) from None
            raise BmcUnreachable(f"{what}: {exc}") from None

    def _broken(self) -> bool:
        return self._cmd is None or self._cmd.ipmi_session.broken

    # -- sensors ---------------------------------------------------------
    def sdr_changed(self) -> bool:
        """True when the BMC's SDR repository was changed since it was read
        (Get SDR Repository Info: most recent addition/erase stamps)."""
        info = self._raw("get SDR repository info", 0x0A, 0x20)
        stamp = info[5:13]
        changed = self._sdr_stamp is not None and stamp != self._sdr_stamp
        self._sdr_stamp = stamp
        return changed

    def sensors(self) -> list[SensorReading]:
        def read(cmd):
            sdr = cmd.init_sdr()
            if self._sdr_stamp is None:
                self.sdr_changed()
            out = []
            for number in sdr.get_sensor_numbers():
                entry = sdr.sensors[number]
                data = self._raw(f"read sensor {entry.name!r}", 0x04, 0x2D,
                                 (entry.sensor_number,), allow_missing=True)
                if data is None:
                    continue
                out.append(_reading(entry, entry.decode_sensor_reading(cmd, data)))
            return out
        return self._call("read sensors", read)

    def dcmi_power_watts(self) -> float | None:
        """DCMI Get Power Reading (system power statistics): the current
        reading, or None when the BMC has no DCMI power management or the
        measurement is not active."""
        try:
            data = self._raw("DCMI get power reading", 0x2C, 0x02, (0xDC, 0x01, 0x00, 0x00))
        except BmcCommandFailed:
            return None
        if len(data) < 18 or data[0] != 0xDC or not data[17] & 0x40:
            return None
        return float(struct.unpack_from("<H", data, 1)[0])

    # -- chassis ---------------------------------------------------------
    def chassis_status(self) -> dict[str, bool]:
        data = self._raw("get chassis status", 0x00, 0x01)
        return {"power_on": bool(data[0] & 0x01), "drive_fault": bool(data[2] & 0x04),
                "cooling_fault": bool(data[2] & 0x08)}

    def chassis_control(self, action: str) -> None:
        self._raw(f"chassis control {action}", 0x00, 0x02, (CHASSIS_CONTROL[action],))

    def boot_setting(self) -> BootSetting:
        got = self._call("get boot device", lambda cmd: cmd.get_bootdev())
        device = _BOOT_FROM_PYGHMI.get(got.get("bootdev"), "default")
        return BootSetting(device, bool(got.get("persistent")) if device != "default" else False,
                           bool(got.get("uefimode")))

    def set_boot(self, device: str, persistent: bool, uefi: bool) -> None:
        self._call(f"set boot device {device}", lambda cmd: cmd.set_bootdev(
            _BOOT_TO_PYGHMI[device], persist=persistent, uefiboot=uefi))

    def identify(self, on: bool, seconds: int | None) -> None:
        if on and seconds:
            self._raw("chassis identify", 0x00, 0x04, (max(1, min(255, seconds)),))
        else:
            self._raw("chassis identify", 0x00, 0x04, (0, 1 if on else 0))

    # -- system event log ------------------------------------------------
    def sel_info(self) -> SelInfo:
        d = self._raw("get SEL info", 0x0A, 0x40)
        entries, free = struct.unpack_from("<HH", d, 1)
        add, erase = struct.unpack_from("<II", d, 5)
        return SelInfo(entries, free, add, erase)

    def sel_entry(self, record_id: int) -> tuple[int, SelEntry] | None:
        """(next record id, entry) for ``record_id`` (0 = the first), or None
        when there is no such record.  Next is 0xFFFF after the last."""
        data = self._raw(f"get SEL entry {record_id}", 0x0A, 0x43,
                         struct.pack("<HHBB", 0, record_id, 0, 0xFF), allow_missing=True)
        if data is None or len(data) < 18:
            return None
        return struct.unpack_from("<H", data)[0], self._decode_sel(data[2:18])

    def _decode_sel(self, raw: bytes) -> SelEntry:
        """A 16-byte SEL record.  Standard system event records (type 0x02)
        are decoded here with pyghmi's IPMI event tables (its own SEL decoder
        names sensors by "generator.number.lun" and misses the SDR name);
        OEM records are reported raw."""
        record_id, rtype = struct.unpack_from("<H", raw)[0], raw[2]
        stamp = struct.unpack_from("<I", raw, 3)[0] if rtype < 0xE0 else 0
        base = dict(record_id=record_id,
                    time=float(stamp) if stamp >= 0x20000000 else None,  # below: seconds since BMC init
                    raw=bytes(raw))
        if rtype != 0x02:
            return SelEntry(sensor="", sensor_number=0, sensor_type="", event=f"OEM record type 0x{rtype:02x}",
                            severity="info", deassertion=False, **base)
        sensor_type, number = raw[10], raw[11]
        deassertion, event_type, offset = bool(raw[12] & 0x80), raw[12] & 0x7F, raw[13] & 0x0F
        consts = self._command().get_event_constants()
        if event_type == 0x6F:
            table = consts.sensor_type_offsets.get(sensor_type, {})
        else:
            table = consts.generic_type_offsets.get(event_type, {})
        desc = table.get(offset, {})
        event = desc.get("deassertion_desc" if deassertion else "desc") or desc.get("desc", "")
        severity = desc.get("deassertion_severity" if deassertion else "severity", 0)
        sensor = self._sensor_name(raw[7], number, raw[8] & 0x03)
        return SelEntry(sensor=sensor, sensor_number=number,
                        sensor_type=consts.sensor_type_codes.get(sensor_type, f"type 0x{sensor_type:02x}"),
                        event=event or f"event type 0x{event_type:02x} offset {offset}",
                        severity=_severity(severity), deassertion=deassertion, **base)

    def _sensor_name(self, owner: int, number: int, lun: int) -> str:
        """The SDR name of the sensor (pyghmi keys its SDR "owner.number.lun")."""
        sensors = self._command().init_sdr().sensors
        entry = sensors.get(f"{owner}.{number}.{lun}")
        if entry is None:  # some BMCs log another generator id than the SDR owner
            entry = next((e for e in sensors.values() if e.sensor_number == number), None)
        return entry.name if entry is not None else f"Sensor {number}"

    def clear_sel(self) -> None:
        rsv = self._raw("reserve SEL", 0x0A, 0x42)
        reservation = struct.unpack_from("<H", rsv)[0]
        self._raw("clear SEL", 0x0A, 0x47, struct.pack("<H", reservation) + b"CLR\xaa")

    # -- identity --------------------------------------------------------
    def identity(self) -> BmcIdentity:
        d = self._raw("get device ID", 0x06, 0x01)
        fw = f"{d[2] & 0x7F}.{d[3]:02x}"
        ipmi = f"{d[4] & 0x0F}.{d[4] >> 4}"
        manufacturer = d[6] | d[7] << 8 | (d[8] & 0x0F) << 16
        product = d[9] | d[10] << 8
        fru = self._call("read FRU 0", lambda cmd: cmd.get_inventory_of_component("System")) or {}
        return BmcIdentity(firmware_version=fw, guid=str(fru.get("UUID") or ""),
                           manufacturer_id=manufacturer, product_id=product, device_id=d[0],
                           ipmi_version=ipmi, fru=_fru_fields(fru))


_FRU_KEYS = {"Board manufacturer": "board_manufacturer", "Board product name": "board_product",
             "Board serial number": "board_serial", "Board model": "board_part_number",
             "Manufacturer": "product_manufacturer", "Product name": "product_name",
             "Serial Number": "product_serial", "Model": "product_part_number",
             "Hardware Version": "product_version", "Asset Number": "product_asset_tag",
             "Chassis serial number": "chassis_serial"}


def _fru_fields(fru: dict) -> dict[str, str]:
    out = {}
    for key, name in _FRU_KEYS.items():
        value = fru.get(key)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if value:
            out[name] = str(value).strip()
    return out


def _reading(entry, r) -> SensorReading:
    unit = str(r.units or "").strip()
    if r.unavailable:
        return SensorReading(entry.sensor_number, r.name, _kind(unit, None), str(r.type), unit,
                             None, Health.UNAVAILABLE)
    kind = _kind(unit, r.value)
    return SensorReading(entry.sensor_number, r.name, kind, str(r.type),
                         unit if kind is not SensorKind.DISCRETE else "", r.value,
                         _health(int(r.health)), tuple(str(s) for s in r.states))


def _kind(unit: str, value) -> SensorKind:
    if value is None and not unit:
        return SensorKind.DISCRETE
    return _KIND_OF_UNIT.get(unit, SensorKind.OTHER if value is not None else SensorKind.DISCRETE)


def _login_error(message: str) -> Unavailable:
    lowered = message.lower()
    if any(w in lowered for w in ("unauthorized", "password", "invalid user", "name", "rakp",
                                  "cipher suite", "ipmi 1.5", "privilege", "integrity")):
        return BmcAuthFailed(f"login refused: {message}")
    return BmcUnreachable(f"login failed: {message}")
