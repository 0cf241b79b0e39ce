"""The shipped unit file is valid for systemd and declares what the agent's
readiness/watchdog protocol needs."""
import configparser
import pathlib
import shutil
import subprocess
import sys

import pytest

UNIT = pathlib.Path(__file__).resolve().parent.parent / "systemd/hostagent.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_unit_is_notify_with_watchdog_and_restart():
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"].rstrip("s").isdigit()
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1] == "serve"
    assert "HUP" in service["ExecReload"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart exists: point it at this interpreter.
    text = UNIT.read_text().replace("/opt/hostagent/bin/hostagent", sys.executable)
    copy = tmp_path / "hostagent.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    problems = [l for l in result.stderr.splitlines() if "hostagent.service" in l]
    assert result.returncode == 0 and not problems, result.stderr
