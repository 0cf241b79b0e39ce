"""The ipmi_sim test BMC (tests/ipmisim) behaves like a BMC, checked with
ipmitool (lanplus, cipher suite 3) and pyghmi over real IPMI-over-LAN."""
from __future__ import annotations

import time

import pytest

from tests.ipmisim import FRU_STRINGS, IpmiSim, IpmitoolError, ipmi_sim, ipmi_sim_factory  # noqa: F401

pytestmark = pytest.mark.integration

_TH_COLUMNS = ("lnr", "lc", "lnc", "unc", "uc", "unr")   # `ipmitool sensor` order


def sensor_table(sim: IpmiSim, **kw) -> dict[str, dict]:
    """`ipmitool sensor` -> {name: {"value", "unit", "status", thresholds...}}"""
    out = {}
    for line in sim.ipmitool("sensor", **kw).splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) < 10:
            continue
        row = {"value": cols[1], "unit": cols[2], "status": cols[3]}
        for key, col in zip(_TH_COLUMNS, cols[4:10]):
            if col != "na":
                row[key] = float(col)
        out[cols[0]] = row
    return out


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_sdr_lists_sensors_with_values_units_and_thresholds(ipmi_sim):
    table = sensor_table(ipmi_sim)
    analog = [s for s in ipmi_sim.sensors if s.is_threshold]
    assert len(analog) == 8 and {s.kind for s in analog} == {
        "temperature", "fan", "voltage", "current", "power"}
    for s in analog:
        row = table[s.name]
        assert float(row["value"]) == pytest.approx(s.value, abs=1e-6), s.name
        assert row["unit"] == s.unit
        assert row["status"] == "ok"
        got = {k: v for k, v in row.items() if k in _TH_COLUMNS}
        assert got == pytest.approx(s.thresholds), s.name
    intru = ipmi_sim.sensor_by_name("Chassis Intru")
    assert table[intru.name]["unit"] == "discrete"
    elist = ipmi_sim.ipmitool("sdr", "elist")
    assert "CPU Temp" in elist and "45 degrees C" in elist and "3.30 Volts" in elist


def test_set_sensor_changes_what_ipmitool_reads(ipmi_sim):
    cpu = ipmi_sim.sensor_by_name("CPU Temp")
    fan = ipmi_sim.sensor_by_name("FAN2")
    assert ipmi_sim.set_sensor(cpu.number, 97) == 97
    assert ipmi_sim.set_sensor(fan.number, 4210) == 4200      # 50 RPM resolution
    table = sensor_table(ipmi_sim)
    assert float(table["CPU Temp"]["value"]) == 97
    assert table["CPU Temp"]["status"] == "cr"                # above uc=95
    assert float(table["FAN2"]["value"]) == 4200
    ipmi_sim.set_sensor(ipmi_sim.sensor_by_name("Chassis Intru").number, 0x1)
    assert "General Chassis intrusion" in ipmi_sim.ipmitool("sensor", "get", "Chassis Intru")


def test_dcmi_power_reading_follows_set_power_watts(ipmi_sim):
    ipmi_sim.set_power_watts(451)
    out = ipmi_sim.ipmitool("dcmi", "power", "reading")
    assert "Instantaneous power reading:                   451 Watts" in out
    assert float(sensor_table(ipmi_sim)["PSU1 Power"]["value"]) == 452   # 4 W steps
    ipmi_sim.set_power_watts(120)
    assert " 120 Watts" in ipmi_sim.ipmitool("dcmi", "power", "reading")


def test_chassis_power_control_is_recorded_and_reported(ipmi_sim):
    assert ipmi_sim.ipmitool("power", "status").strip() == "Chassis Power is on"
    ipmi_sim.ipmitool("power", "off")
    assert ipmi_sim.ipmitool("power", "status").strip() == "Chassis Power is off"
    ipmi_sim.ipmitool("power", "on")
    assert ipmi_sim.ipmitool("power", "status").strip() == "Chassis Power is on"
    ipmi_sim.ipmitool("power", "cycle")          # off now, on again ~1 s later
    assert wait_for(lambda: [r["value"] for r in ipmi_sim.chassis_log()][-2:] == ["off", "on"])
    assert ipmi_sim.ipmitool("power", "status").strip() == "Chassis Power is on"
    ipmi_sim.ipmitool("power", "reset")
    ipmi_sim.ipmitool("power", "soft")
    assert ipmi_sim.ipmitool("power", "status").strip() == "Chassis Power is off"
    ops = [(r["op"], r["value"]) for r in ipmi_sim.chassis_log()]
    assert ops == [("power", v) for v in ("off", "on", "off", "on", "reset", "soft")]


@pytest.mark.parametrize("persistent", [True, False])
def test_bootdev_sets_valid_boot_flags(ipmi_sim, persistent):
    args = ["chassis", "bootdev", "pxe"] + (["options=persistent"] if persistent else [])
    ipmi_sim.ipmitool(*args)
    out = ipmi_sim.ipmitool("chassis", "bootparam", "get", "5")
    assert "Boot Flag Valid" in out
    assert "Force PXE" in out
    assert ("Options apply to all future boots" in out) is persistent
    boot = [r for r in ipmi_sim.chassis_log() if r["op"] == "boot"]
    assert boot[-1]["value"] == "pxe" and boot[-1]["valid"] is True
    assert boot[-1]["persistent"] is persistent


def test_identify_is_recorded(ipmi_sim):
    assert "5 seconds" in ipmi_sim.ipmitool("chassis", "identify", "5")
    ipmi_sim.ipmitool("chassis", "identify", "force")
    ident = [r for r in ipmi_sim.chassis_log() if r["op"] == "identify"]
    assert [(r["interval"], r["force"]) for r in ident] == [(5, False), (0, True)]


def test_sel_add_list_and_clear(ipmi_sim):
    assert "Entries          : 0" in ipmi_sim.ipmitool("sel", "info")
    cpu = ipmi_sim.sensor_by_name("CPU Temp")
    rid = ipmi_sim.add_sel(cpu.number, 0x01, (0x59, 97, 95))     # UC going high
    rid2 = ipmi_sim.add_sel(ipmi_sim.sensor_by_name("Chassis Intru").number, 0x6F, (0x00, 0xFF, 0xFF))
    assert (rid, rid2) == (1, 2)
    lines = ipmi_sim.ipmitool("sel", "elist").strip().splitlines()
    assert len(lines) == 2
    assert "CPU Temp" in lines[0] and "Upper Critical going high" in lines[0]
    assert "Pre-Init" not in lines[0]            # SEL clock = wall clock (simext)
    assert "General Chassis intrusion" in lines[1]
    ipmi_sim.ipmitool("sel", "clear")
    assert wait_for(lambda: "Entries          : 0" in ipmi_sim.ipmitool("sel", "info"))


def test_fru_print_shows_inventory_strings(ipmi_sim):
    out = ipmi_sim.ipmitool("fru", "print", "0")
    for key in ("board_manufacturer", "board_product", "board_serial", "board_part",
                "product_manufacturer", "product_name", "product_serial", "chassis_serial"):
        assert FRU_STRINGS[key] in out, key
    assert ipmi_sim.fru["board_serial"] == FRU_STRINGS["board_serial"]


def test_operator_can_read_but_not_administer(ipmi_sim):
    op = IpmiSim.OPERATOR
    assert "FAN1" in ipmi_sim.ipmitool("sdr", "elist", user=op)
    assert "Watts" in ipmi_sim.ipmitool("dcmi", "power", "reading", user=op)
    with pytest.raises(IpmitoolError, match="Insufficient privilege"):
        ipmi_sim.ipmitool("user", "set", "password", "2", "hijacked1", user=op)
    # the user's limit holds at session open too (ipmi_sim alone grants it)
    with pytest.raises(IpmitoolError):
        ipmi_sim.ipmitool("mc", "info", user=op, priv="ADMINISTRATOR")
    with pytest.raises(IpmitoolError, match="Unable to establish"):
        ipmi_sim.ipmitool("mc", "info", user=("admin", "wrongpass"))
    assert "Chassis Power" in ipmi_sim.ipmitool("power", "status")   # admin still works


def test_cipher_suites(ipmi_sim):
    for suite in (0, 1, 2, 3, 6):
        assert "Firmware Revision" in ipmi_sim.ipmitool("mc", "info", cipher=suite)
    # No SHA-256 suites in openipmi 2.0.33
    with pytest.raises(IpmitoolError, match="invalid authentication algorithm"):
        ipmi_sim.ipmitool("mc", "info", cipher=17)


def test_kill_then_start_again_same_port_and_state(ipmi_sim):
    port = ipmi_sim.port
    ipmi_sim.add_sel(1, 0x01, (0x59, 97, 95))
    ipmi_sim.kill()
    assert not ipmi_sim.running and not ipmi_sim.ping(0.2)
    ipmi_sim.start()
    assert ipmi_sim.port == port
    assert "2.17" in ipmi_sim.ipmitool("mc", "info")
    assert len(ipmi_sim.ipmitool("sel", "elist").strip().splitlines()) == 1   # SEL persisted
    ipmi_sim.stop()
    ipmi_sim.stop()                                     # idempotent


def test_64_sensor_variant(ipmi_sim_factory):
    sim = ipmi_sim_factory(sensors=64)
    analog = [s for s in sim.sensors if s.is_threshold]
    assert len(analog) == 64 and len(sim.sensors) == 65
    assert len({s.name for s in sim.sensors}) == 65
    table = sensor_table(sim)
    assert set(table) == {s.name for s in sim.sensors}
    for s in analog:
        assert float(table[s.name]["value"]) == pytest.approx(s.value, abs=1e-6), s.name


def test_pyghmi_against_the_simulator(ipmi_sim):
    cmd = ipmi_sim.pyghmi_command()
    try:
        assert cmd.get_power() == {"powerstate": "on"}
        readings = {r.name: r for r in cmd.get_sensor_data()}
        assert set(readings) == {s.name for s in ipmi_sim.sensors}
        for s in ipmi_sim.sensors:
            if s.is_threshold:
                assert readings[s.name].value == pytest.approx(s.value, abs=1e-6), s.name
        assert cmd.get_health()["badreadings"] == []
        ipmi_sim.set_power_watts(333)
        assert cmd.get_system_power_watts() == 333
        inv = cmd.get_inventory_of_component("System")
        assert inv["Board serial number"] == FRU_STRINGS["board_serial"]
        assert inv["Serial Number"] == FRU_STRINGS["product_serial"]
        assert inv["UUID"].lower() == ipmi_sim.guid
        cmd.set_bootdev("network", persist=True)
        assert cmd.get_bootdev() == {"bootdev": "network", "persistent": True, "uefimode": False}
        ipmi_sim.set_sensor(ipmi_sim.sensor_by_name("CPU Temp").number, 97)
        bad = cmd.get_health()["badreadings"]
        assert [r.name for r in bad] == ["CPU Temp"]
    finally:
        cmd.ipmi_session.logout()


def test_pyghmi_operator_downgrades_privilege(ipmi_sim):
    cmd = ipmi_sim.pyghmi_command(user=IpmiSim.OPERATOR)
    try:
        assert cmd.ipmi_session.privlevel == 3        # asked 4, got refused, retried
        assert cmd.get_power() == {"powerstate": "on"}
        assert cmd.get_system_power_watts() == 240
    finally:
        cmd.ipmi_session.logout()
