"""What the simulated BMC contains: sensors (with their SDR bytes), FRU image, GUID.

Everything here is pure data generation, no processes: the emu command file
and lan.conf are rendered by ``config.py`` from these objects.

Sensor values are stored in the BMC as raw bytes; the SDR's linear factors
(value = M * raw * 10**R, B = 0 everywhere) turn them into engineering units.
We pick M/R per kind so that typical readings are exact in both directions.
"""
from __future__ import annotations

import dataclasses
import uuid

BMC_ADDR = 0x20

# IPMI unit codes (IPMI 2.0 table 43-15) and sensor types (table 42-3).
_UNIT = {"degrees C": 1, "Volts": 4, "Amps": 5, "Watts": 6, "RPM": 18}
_SENSOR_TYPE = {"temperature": 0x01, "voltage": 0x02, "current": 0x03,
                "fan": 0x04, "power": 0x08}
# Entity ids (table 43-13): processor, system board, fan, power supply, chassis.
_ENTITY = {"cpu": 0x03, "board": 0x07, "fan": 0x1D, "psu": 0x0A, "chassis": 0x17}

# kind -> (unit, M, R exponent).  value = M * raw * 10**R.
_FACTORS = {
    "temperature": ("degrees C", 1, 0),   # 1 degC / step, 0..255
    "fan": ("RPM", 50, 0),                # 50 RPM / step, 0..12750
    "voltage": ("Volts", 2, -2),          # 20 mV / step, 0..5.10  (overridden for 12V)
    "current": ("Amps", 1, -1),           # 0.1 A / step, 0..25.5
    "power": ("Watts", 4, 0),             # 4 W / step, 0..1020
}

THRESHOLD_NAMES = ("lnc", "lc", "lnr", "unc", "uc", "unr")  # bit 0..5 in IPMI order


@dataclasses.dataclass
class SimSensor:
    number: int
    name: str
    kind: str            # temperature, fan, voltage, current, power, discrete
    unit: str            # "" for discrete
    value: float         # initial converted value (discrete: state bitmask)
    thresholds: dict[str, float]  # converted, only the thresholds that are set
    m: int = 1
    r_exp: int = 0
    entity: int = 0x07

    # --- conversions -------------------------------------------------------
    def to_raw(self, value: float) -> int:
        raw = round(value / (self.m * 10 ** self.r_exp))
        if not 0 <= raw <= 255:
            raise ValueError(f"{self.name}: {value} {self.unit} not representable (raw {raw})")
        return raw

    def from_raw(self, raw: int) -> float:
        return round(self.m * raw * 10 ** self.r_exp, 6)

    @property
    def is_threshold(self) -> bool:
        return self.kind != "discrete"

    # --- SDR ---------------------------------------------------------------
    def sdr_bytes(self) -> bytes:
        name = self.name.encode("ascii")
        assert len(name) <= 16, self.name
        if not self.is_threshold:
            return self._compact_sdr(name)
        unit, _, _ = _FACTORS[self.kind]
        mask = 0
        raw_th = {}
        for bit, key in enumerate(THRESHOLD_NAMES):
            if key in self.thresholds:
                mask |= 1 << bit
                raw_th[key] = self.to_raw(self.thresholds[key])
        # Assertion events for every threshold set (going-low for lower ones,
        # going-high for upper ones); keeps `ipmitool sensor get` output honest.
        amask = 0
        for bit, key in enumerate(THRESHOLD_NAMES):
            if key in raw_th:
                amask |= 1 << (bit * 2 + (1 if key.startswith("u") else 0))
        r_nibble = self.r_exp & 0x0F
        body = bytes([
            BMC_ADDR, 0x00, self.number, self.entity, 0x01,
            0x67,            # init: scanning, events, sensor type; enabled
            0x48,            # auto re-arm, thresholds readable+settable, per-threshold events
            _SENSOR_TYPE[self.kind], 0x01,                # threshold event/reading type
            amask & 0xFF, (amask >> 8) | (mask << 4 & 0x70),  # assert mask + lower reading mask
            amask & 0xFF, (amask >> 8) | (mask << 1 & 0x70),  # deassert mask + upper reading mask
            mask, mask,      # settable, readable threshold masks
            0x00,            # unsigned, no rate, no modifier, not %
            _UNIT[unit], 0x00, 0x00,                       # base unit, modifier, linear
            self.m & 0xFF, ((self.m >> 8) & 3) << 6,       # M (10 bits), tolerance
            0x00, 0x00,                                    # B, accuracy
            0x00,                                          # accuracy exp, direction
            (r_nibble << 4) | 0x0,                         # R exp, B exp
            0x01, self.to_raw(self.value),                 # nominal specified
            0x00, 0x00,                                    # normal max/min
            0xFF, 0x00,                                    # sensor max/min
            raw_th.get("unr", 0), raw_th.get("uc", 0), raw_th.get("unc", 0),
            raw_th.get("lnr", 0), raw_th.get("lc", 0), raw_th.get("lnc", 0),
            0x00, 0x00,                                    # hysteresis
            0x00, 0x00, 0x00,                              # reserved, OEM
            0xC0 | len(name),
        ]) + name
        return bytes([0x00, 0x00, 0x51, 0x01, len(body)]) + body

    def _compact_sdr(self, name: bytes) -> bytes:
        body = bytes([
            BMC_ADDR, 0x00, self.number, self.entity, 0x01,
            0x67, 0x40,      # auto re-arm, no thresholds
            0x05, 0x6F,      # physical security, sensor-specific
            0x01, 0x00, 0x01, 0x00, 0x01, 0x00,  # offset 0 (general intrusion) only
            0x00, 0x00, 0x00,                    # units: none
            0x00, 0x00, 0x00, 0x00,              # no sharing, no hysteresis
            0x00, 0x00, 0x00, 0x00,              # reserved, OEM
            0xC0 | len(name),
        ]) + name
        return bytes([0x00, 0x00, 0x51, 0x02, len(body)]) + body


def _threshold(number, name, kind, value, entity, **th):
    unit, m, r = _FACTORS[kind]
    if name.startswith("12V") or name.endswith("12V"):
        m, r = 6, -2                       # 60 mV / step, 0..15.3 V
    return SimSensor(number, name, kind, unit, value, th, m, r, entity)


# The first eight sensors, as in the brief; ``make_sensors`` adds more
# (DIMM temps, fans, rails...) for the benchmark variant.
def _base_sensors() -> list[SimSensor]:
    t = _threshold
    return [
        t(1, "CPU Temp", "temperature", 45, _ENTITY["cpu"], lnc=5, lc=2, unc=85, uc=95, unr=100),
        t(2, "Inlet Temp", "temperature", 24, _ENTITY["board"], lnc=5, lc=2, unc=40, uc=45, unr=50),
        t(3, "FAN1", "fan", 5400, _ENTITY["fan"], lnr=300, lc=500, lnc=800, unc=12000, uc=12500),
        t(4, "FAN2", "fan", 5600, _ENTITY["fan"], lnr=300, lc=500, lnc=800, unc=12000, uc=12500),
        t(5, "12V", "voltage", 12.0, _ENTITY["board"], lc=10.8, lnc=11.4, unc=12.6, uc=13.2),
        t(6, "3.3V", "voltage", 3.3, _ENTITY["board"], lc=2.96, lnc=3.14, unc=3.46, uc=3.64),
        t(7, "PSU1 Current", "current", 8.5, _ENTITY["psu"], unc=18.0, uc=20.0),
        t(8, "PSU1 Power", "power", 240, _ENTITY["psu"], unc=800, uc=900),
    ]


def _extra_sensor(number: int, i: int) -> SimSensor:
    """Deterministic filler for the N > 8 variants, cycling through kinds."""
    t = _threshold
    kind = ("temperature", "fan", "voltage", "temperature", "current", "power")[i % 6]
    n = i // 6 + 1
    if kind == "temperature":
        name = f"DIMM{n} Temp" if i % 6 == 0 else f"VR{n} Temp"
        return t(number, name, kind, 30 + i % 20, _ENTITY["board"], lnc=5, unc=80, uc=90)
    if kind == "fan":
        return t(number, f"FAN{n + 2}", kind, 4000 + 50 * (i % 20), _ENTITY["fan"],
                 lc=500, lnc=800, unc=12000)
    if kind == "voltage":
        return t(number, f"VCORE{n}", kind, 1.8, _ENTITY["cpu"], lc=1.5, lnc=1.6, unc=2.0, uc=2.1)
    if kind == "current":
        return t(number, f"PSU{n + 1} Current", kind, 4.0 + (i % 10) / 10, _ENTITY["psu"],
                 unc=18.0, uc=20.0)
    return t(number, f"PSU{n + 1} Power", kind, 200 + 4 * (i % 10), _ENTITY["psu"], unc=800, uc=900)


INTRUSION_NAME = "Chassis Intru"


def make_sensors(count: int) -> list[SimSensor]:
    """``count`` threshold sensors numbered 1..count, then one discrete
    "Chassis Intru" sensor (number count + 1), which is always present."""
    if count < 8:
        raise ValueError("the simulated BMC needs at least the 8 base threshold sensors")
    if count > 200:
        raise ValueError("at most 200 sensors (one LUN, sensor 0 is the watchdog)")
    out = _base_sensors()
    for i in range(count - 8):
        out.append(_extra_sensor(9 + i, i))
    out.append(SimSensor(count + 1, INTRUSION_NAME, "discrete", "", 0, {}, entity=_ENTITY["chassis"]))
    return out


# --- FRU ----------------------------------------------------------------------

FRU_STRINGS = {
    "chassis_part": "CH-4U-0042",
    "chassis_serial": "CHS0000000123",
    "board_manufacturer": "Sovereign Systems GmbH",
    "board_product": "SSB-2200 Mainboard",
    "board_serial": "BRD2024000017",
    "board_part": "SSB-2200-R3",
    "product_manufacturer": "Sovereign Systems GmbH",
    "product_name": "SovServer R2200 Compute Node",
    "product_part": "R2200-CN-16",
    "product_version": "Rev 3.1",
    "product_serial": "SRV2024000017",
    "product_asset_tag": "ASSET-000017",
}
FRU_SIZE = 1024  # reported inventory size: several reads whatever the chunk size


def _fru_field(s: str) -> bytes:
    b = s.encode("ascii")
    assert len(b) <= 63
    return bytes([0xC0 | len(b)]) + b


def _fru_area(prefix: bytes, fields: list[str], extra: list[str] = ()) -> bytes:
    data = bytearray(prefix)
    for f in list(fields) + list(extra):
        data += _fru_field(f)
    data.append(0xC1)                                   # end of fields
    while (len(data) + 1) % 8:
        data.append(0x00)
    data[1] = (len(data) + 1) // 8                      # area length in 8-byte units
    data.append((-sum(data)) & 0xFF)                    # checksum
    return bytes(data)


def make_fru() -> bytes:
    """IPMI FRU image: common header + chassis, board and product areas.

    Custom fields pad the areas so the image is several hundred bytes; the
    rest up to FRU_SIZE is 0xFF (unprogrammed EEPROM)."""
    s = FRU_STRINGS
    filler = [f"custom field {i:02d} " + "x" * 40 for i in range(3)]
    chassis = _fru_area(bytes([0x01, 0x00, 0x17]), [s["chassis_part"], s["chassis_serial"]])
    board = _fru_area(bytes([0x01, 0x00, 0x00, 0x00, 0x00, 0x00]),  # English, mfg date unspecified
                      [s["board_manufacturer"], s["board_product"], s["board_serial"],
                       s["board_part"], "board.fru"], filler)
    product = _fru_area(bytes([0x01, 0x00, 0x00]),
                        [s["product_manufacturer"], s["product_name"], s["product_part"],
                         s["product_version"], s["product_serial"], s["product_asset_tag"],
                         "product.fru"], filler)
    off_c = 1
    off_b = off_c + len(chassis) // 8
    off_p = off_b + len(board) // 8
    header = bytearray([0x01, 0x00, off_c, off_b, off_p, 0x00, 0x00])
    header.append((-sum(header)) & 0xFF)
    image = bytes(header) + chassis + board + product
    assert len(image) <= FRU_SIZE
    return image + b"\xff" * (FRU_SIZE - len(image))


def guid_for(seed: str) -> str:
    """Stable per-instance GUID, canonical form ("ddbb63e0-f688-...").  That
    is what SMBIOS/dmidecode and pyghmi (decode_wireformat_uuid) print."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "hostagent-ipmisim:" + seed))


def guid_wire_hex(guid: str) -> str:
    """The 16 bytes Get System GUID returns, as lan.conf's ``guid`` wants
    them: SMBIOS mixed-endian (first three fields little endian)."""
    return uuid.UUID(guid).bytes_le.hex()
