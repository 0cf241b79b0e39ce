"""The IPMI backend (pyghmi, adjusted by agent/backends/ipmi_session.py)
against a real BMC simulator: the cipher-suite policy, the login
serialization that keeps one BMC's refused login from stalling another's
calls, and recovery after the BMC restarts."""
from __future__ import annotations

import threading
import time

import pytest

from agent.backends.ipmi import BmcAuthFailed, BmcUnreachable, PyghmiBmc
from agent.backends.ipmi_session import SessionPolicy, probe
from agent.bmc.guard import Guard
from agent.errors import Unavailable
from agent.secrets import Secret
from tests.ipmisim import IpmiSim, require_ipmi_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    require_ipmi_sim()
    s = IpmiSim(tmp_path_factory.mktemp("sim")).start()
    yield s
    s.stop()


def backend(sim, suites=(17, 3), user=None, password=None, privilege="administrator"):
    user = user or sim.ADMIN[0]
    password = password if password is not None else sim.ADMIN[1]
    return PyghmiBmc(sim.host, sim.port, user, Secret(password.encode(), "test"),
                     SessionPolicy(tuple(suites)), privilege)


def test_suite_3_is_used_only_when_listed(sim):
    # ipmi_sim has no SHA-256: a [17]-only target must be refused, loudly.
    strict = backend(sim, suites=(17,), user=sim.OPERATOR[0], password=sim.OPERATOR[1],
                     privilege="operator")
    with pytest.raises(BmcAuthFailed, match="refused cipher suite 17.*allowed suites: 17"):
        strict.chassis_status()
    assert strict.cipher_suite == 0
    lenient = backend(sim, suites=(17, 3))
    assert lenient.chassis_status()["power_on"] in (True, False)
    assert lenient.cipher_suite == 3
    lenient.close()


def test_readings_match_ipmitool(sim):
    b = backend(sim)
    by_name = {s.name: s for s in b.sensors()}
    for name in ("CPU Temp", "FAN1", "12V"):
        assert f"{by_name[name].value:g}" in sim.ipmitool("sensor", "reading", name)
    info = b.identity()
    assert info.fru["board_serial"] == sim.fru["board_serial"]
    b.close()


def test_probe_tells_a_live_bmc_from_a_silent_port(sim):
    assert probe(sim.host, sim.port, 1.0)
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # bound, never answers
        s.bind(("127.0.0.1", 0))
        t0 = time.monotonic()
        assert not probe("127.0.0.1", s.getsockname()[1], 0.3)
        assert time.monotonic() - t0 < 0.6


def test_a_refused_login_does_not_stall_another_sessions_calls(sim):
    """Two logins at once through pyghmi's shared event loop stalled the good
    session's call for ~20 s before logins were serialized."""
    good = backend(sim, user=sim.OPERATOR[0], password=sim.OPERATOR[1], privilege="operator")
    bad = backend(sim, password="definitely-wrong")
    errors = []

    def refuse():
        for _ in range(4):
            try:
                bad.chassis_status()
            except BmcAuthFailed as exc:
                errors.append(str(exc))
            time.sleep(0.2)

    t = threading.Thread(target=refuse)
    t.start()
    slowest = 0.0
    for _ in range(20):  # the first call logs in, concurrently with the bad logins
        t0 = time.monotonic()
        good.chassis_status()
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.05)
    t.join()
    assert len(errors) == 4 and all("Incorrect password" in e for e in errors)
    assert "definitely-wrong" not in " ".join(errors)
    assert slowest < 1.0, slowest
    good.close()


def test_a_killed_bmc_times_out_and_recovers_without_a_new_backend(tmp_path):
    require_ipmi_sim()
    sim = IpmiSim(tmp_path / "sim").start()
    try:
        b = backend(sim)
        guard = Guard("t", timeout=1.5, initial_backoff=0.2, max_backoff=0.5, on_timeout=b.abort)
        assert guard.call(b.chassis_status)["power_on"]
        sim.kill()
        with pytest.raises(BmcUnreachable):
            guard.call(b.chassis_status)
        sim.start()
        deadline = time.monotonic() + 8  # pyghmi alone kept retrying ~20 s
        while True:
            try:
                assert guard.call(b.chassis_status)["power_on"]
                break
            except Unavailable:  # timeouts and CircuitOpen while the old call gives up
                assert time.monotonic() < deadline, guard.last_error
                time.sleep(0.2)
        assert b.logins >= 2  # a fresh session, same backend
    finally:
        sim.stop()


def test_waiting_for_a_slow_bmc_does_not_burn_cpu(sim):
    """The wake-up race fix must wait, not spin: a BMC that takes 300 ms to
    answer costs the agent (nearly) no CPU in the meantime."""
    import os
    import signal

    b = backend(sim)
    b.chassis_status()  # logged in
    cpu0 = time.process_time()
    os.kill(sim._proc.pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=b.chassis_status)
        t.start()
        time.sleep(0.3)
    finally:
        os.kill(sim._proc.pid, signal.SIGCONT)
    t.join(5)
    assert time.process_time() - cpu0 < 0.1
    b.close()
