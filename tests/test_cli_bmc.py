"""``hostagent bmc ...`` as an operator runs it: the CLI as a subprocess,
talking over the unix socket (root: admin) to the real agent, which talks
IPMI-over-LAN to OpenIPMI's ipmi_sim; every action is cross-checked with
ipmitool or with the simulator's own record of what it was asked to do."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.agent_process import AgentProcess
from tests.ipmisim import IpmiSim, require_ipmi_sim

pytestmark = pytest.mark.integration

TARGET = "lab1"  # local: this host's own BMC, the default target; "dead" answers nothing


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_ipmi_sim()
    tmp = tmp_path_factory.mktemp("cli_bmc")
    sim = IpmiSim(tmp / "sim").start()
    agent = None
    try:
        password = tmp / "admin.pass"
        password.write_text(sim.ADMIN[1])
        password.chmod(0o600)
        agent = AgentProcess(tmp, config=f"""
[collectors.ipmi]
interval = "1s"
[[bmc.targets]]
name = "{TARGET}"
local = true
host = "127.0.0.1"
port = {sim.port}
username = "{sim.ADMIN[0]}"
password = "file:{password}"
cipher_suites = [17, 3]
timeout = "2s"
[[bmc.targets]]
name = "dead"
host = "127.0.0.1"
port = {free_udp_port()}
username = "{sim.ADMIN[0]}"
password = "file:{password}"
timeout = "0.3s"
""")
        agent.wait_ready()
        yield sim, agent
    finally:
        if agent is not None:
            agent.stop()
        sim.stop()


def bmc(env, *args):
    _, agent = env
    return subprocess.run([sys.executable, "-m", "agent", "bmc", *args, "--agent", f"unix:{agent.socket}"],
                          capture_output=True, text=True, timeout=60)


def ok(env, *args):
    result = bmc(env, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def request_id(result) -> str:
    return re.search(r"request id ([0-9a-f-]{36})", result.stderr).group(1)


def test_list_shows_the_target_up_and_exits_one_for_the_dead_one(env):
    sim, _ = env
    deadline = time.monotonic() + 10
    while not (" up " in (result := bmc(env, "list")).stdout and "no answer" in result.stdout):
        # until the collector asked both (the dead one: DOWN with no error before that)
        assert time.monotonic() < deadline, (result.stdout, result.stderr)
        time.sleep(0.3)
    assert result.returncode == 1, result.stderr  # one BMC is down
    header, lab1, dead = result.stdout.splitlines()
    assert header.split()[:6] == ["TARGET", "ADDRESS", "LOCAL", "UP", "CIRCUIT", "CIPHER"]
    # cipher suite 3: ipmi_sim refuses 17
    assert lab1.split() == [TARGET, f"127.0.0.1:{sim.port}", "yes", "up", "closed", "3", "-"]
    assert dead.split()[:4] == ["dead", dead.split()[1], "no", "DOWN"] and "no answer within 0.3s" in dead
    doc = json.loads(bmc(env, "list", "--json").stdout)
    assert [(b["target"], b["up"]) for b in doc["bmcs"]] == [(TARGET, True), ("dead", False)]


def test_a_dead_bmc_is_not_an_unreachable_agent(env):
    result = bmc(env, "power", "--target", "dead")
    assert result.returncode == 1 and result.stderr.startswith("hostagent: UNAVAILABLE: BMC dead ")
    assert "cannot reach the agent" not in result.stderr


def test_sensors_show_readings(env):
    sim, _ = env
    seen = sim.set_sensor(sim.sensor_by_name("CPU Temp").number, 47.0)
    result = ok(env, "sensors")
    rows = {line[:line.index("  ", 5)].split(None, 1)[1]: line for line in result.stdout.splitlines()[2:]}
    cpu = rows["CPU Temp"].split()
    assert cpu[3:6] == ["temperature", f"{seen:g}", "°C"] and cpu[6] == "ok"
    assert "FAN1" in rows and "RPM" in rows["FAN1"]
    doc = json.loads(ok(env, "sensors", "-t", TARGET, "--json").stdout)
    by_name = {s["name"]: s for s in doc["sensors"]}
    assert by_name["CPU Temp"]["value"] == seen and by_name["CPU Temp"]["health"] == "SENSOR_HEALTH_OK"


def test_power_off_and_on_wait_for_the_state(env):
    sim, _ = env
    result = bmc(env, "power", "off")  # the agent's own host: refused without --force
    assert result.returncode == 1 and "FAILED_PRECONDITION" in result.stderr and "force" in result.stderr
    assert sim.power_on
    result = ok(env, "power", "off", "--force")
    assert result.stdout.strip() == f"{TARGET}: power off (after off)"
    request_id(result)  # printed so that a retry can re-attach
    assert ok(env, "power").stdout == "off\n"
    assert "off" in sim.ipmitool("power", "status").lower() and not sim.power_on
    assert sim.chassis_log()[-1]["value"] == "off"

    result = ok(env, "power", "on", "--target", TARGET, "--wait-timeout", "30s")
    assert result.stdout.strip() == f"{TARGET}: power on (after on)"
    assert ok(env, "power").stdout == "on\n" and "on" in sim.ipmitool("power", "status").lower()
    # The same command with the printed request id re-attaches: same result, nothing sent again.
    sent = len(sim.chassis_log())
    again = ok(env, "power", "on", "--target", TARGET, "--wait-timeout", "30s", "--json",
               "--request-id", request_id(result))
    op = json.loads(again.stdout)
    assert op["state"] == "OPERATION_STATE_SUCCEEDED" and op["result"]["power_state"] == "on"
    assert len(sim.chassis_log()) == sent


def test_power_usage_errors(env):
    result = bmc(env, "power", "--force")
    assert result.returncode == 2 and "need an action" in result.stderr
    result = bmc(env, "power", "off", "--wait-timeout", "soon")
    assert result.returncode == 2 and "--wait-timeout" in result.stderr


def test_bootdev_set_and_read_back(env):
    sim, _ = env
    result = ok(env, "bootdev", "pxe", "--persistent")
    assert result.stdout.strip() == f"{TARGET}: boot device pxe (persistent, legacy)"
    assert ok(env, "bootdev").stdout.strip() == "pxe (persistent, legacy)"
    boot = [r for r in sim.chassis_log() if r["op"] == "boot"][-1]
    assert boot["value"] == "pxe" and boot["persistent"]
    assert json.loads(ok(env, "bootdev", "--json").stdout)["device"] == "BOOT_DEVICE_PXE"


def test_identify_with_a_time(env):
    sim, _ = env
    assert ok(env, "identify", "on", "--seconds", "5").stdout.strip() == f"{TARGET}: identify on for 5s"
    assert [r for r in sim.chassis_log() if r["op"] == "identify"][-1]["interval"] == 5
    assert bmc(env, "identify", "off", "--seconds", "5").returncode == 2


def test_sel_shows_a_new_entry_then_clear_empties_it(env):
    sim, _ = env
    record = sim.add_sel(sim.sensor_by_name("FAN1").number, 0x01, (0x52, 0x10, 0x20))
    lines = ok(env, "sel").stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "(UTC)", "SEVERITY", "SENSOR", "EVENT"]
    row = [line for line in lines[1:-1] if line.split()[0] == str(record)][0].split()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\(pre-init\)", row[1])
    assert row[2:4] == ["CRITICAL", "FAN1"] and "[deasserted]" not in lines[-2]
    gone = sim.add_sel(sim.sensor_by_name("FAN1").number, 0x01, (0x52, 0x10, 0x20), deassert=True)
    last = ok(env, "sel", "--last", "1").stdout.splitlines()
    assert len(last) == 3 and last[1].split()[0] == str(gone) and last[1].endswith("[deasserted]")
    assert re.fullmatch(rf"{TARGET}: last 1 of \d+ entries, \d+ bytes free", last[2])

    result = ok(env, "sel", "clear")
    assert re.fullmatch(rf"{TARGET}: event log cleared \(\d+ entries\)", result.stdout.strip())
    doc = json.loads(ok(env, "sel", "--json").stdout)
    assert doc["entries"] == [] and doc["total_entries"] == 0


def test_unknown_target_is_not_found(env):
    for args in (("power",), ("power", "off"), ("sel", "clear")):
        result = bmc(env, *args, "--target", "nope")
        assert result.returncode == 1, result
        assert result.stderr.startswith("hostagent: NOT_FOUND: no BMC target 'nope' (targets: lab1, dead)")
        assert "request id" not in result.stderr  # nothing was started


def test_info_shows_fru(env):
    sim, _ = env
    out = ok(env, "info").stdout
    assert re.search(rf"^product serial:\s+{re.escape(sim.fru['product_serial'])}$", out, re.M)
    assert re.search(r"^guid:\s+[0-9a-fA-F-]{36}$", out, re.M)
    doc = json.loads(ok(env, "info", "--json").stdout)
    assert doc["fru"]["product_serial"] == sim.fru["product_serial"] and doc["target"] == TARGET


def test_unreachable_agent_exits_three(env, tmp_path):
    result = subprocess.run([sys.executable, "-m", "agent", "bmc", "power", "--agent",
                             f"unix:{tmp_path}/nothing.sock"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and "cannot reach the agent" in result.stderr
