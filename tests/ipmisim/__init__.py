"""A real IPMI-over-LAN BMC for tests: OpenIPMI's ipmi_sim on 127.0.0.1.

    from tests.ipmisim import IpmiSim, require_ipmi_sim
    with IpmiSim(tmp_path, sensors=8) as sim:
        sim.ipmitool("sdr", "elist")

or, in a test module, import the fixtures::

    from tests.ipmisim import ipmi_sim, ipmi_sim_factory  # noqa: F401  (pytest fixtures)

System packages: openipmi (ipmi_sim, sdrcomp), libopenipmi-dev (headers for
simext.c), ipmitool (cross-checks), gcc.  Without them the fixtures skip,
unless HOSTAGENT_REQUIRE_IPMISIM=1 (CI), where they fail.
See README.md in this directory for the simulated content and the quirks.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .content import FRU_STRINGS, SimSensor
from .sim import IpmiSim, IpmitoolError, SimError

__all__ = ["IpmiSim", "SimSensor", "SimError", "IpmitoolError", "FRU_STRINGS",
           "ipmi_sim_available", "require_ipmi_sim", "ipmi_sim", "ipmi_sim_factory"]

_NEEDED = {
    "ipmi_sim": "openipmi",
    "ipmitool": "ipmitool",
    "gcc": "gcc",
}
_HEADER = Path("/usr/include/OpenIPMI/mcserv.h")


def ipmi_sim_available() -> tuple[bool, str]:
    """(True, "") or (False, why) -- the why names the Debian packages."""
    missing = [f"{tool} (apt: {pkg})" for tool, pkg in _NEEDED.items() if shutil.which(tool) is None]
    if not _HEADER.exists():
        missing.append(f"{_HEADER} (apt: libopenipmi-dev)")
    if missing:
        return False, "ipmi_sim test BMC unavailable, missing: " + ", ".join(missing)
    return True, ""


def require_ipmi_sim() -> None:
    """Skip the calling test (or fail, with HOSTAGENT_REQUIRE_IPMISIM=1)."""
    import pytest

    ok, why = ipmi_sim_available()
    if ok:
        return
    if os.environ.get("HOSTAGENT_REQUIRE_IPMISIM", "") not in ("", "0"):
        pytest.fail(why)
    pytest.skip(why)


def _fixtures():
    import pytest

    @pytest.fixture
    def ipmi_sim_factory(tmp_path):
        """Call ``ipmi_sim_factory(sensors=64)`` for a started simulator; all
        of them are stopped (killed if need be) at teardown."""
        require_ipmi_sim()
        sims: list[IpmiSim] = []

        def make(sensors: int = 8, **kw) -> IpmiSim:
            sim = IpmiSim(tmp_path / f"bmc{len(sims)}", sensors=sensors, **kw)
            sims.append(sim)
            return sim.start()

        try:
            yield make
        finally:
            for sim in sims:
                try:
                    sim.stop()
                finally:
                    sim.kill()

    @pytest.fixture
    def ipmi_sim(ipmi_sim_factory):
        """A started 8-sensor simulator, private to the test."""
        return ipmi_sim_factory()

    return ipmi_sim_factory, ipmi_sim


try:
    ipmi_sim_factory, ipmi_sim = _fixtures()
except ImportError:  # pytest not installed: the class is still usable
    pass
