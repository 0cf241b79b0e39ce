"""The operator CLI against a running agent, over its unix socket."""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with AgentProcess(tmp_path_factory.mktemp("cli"), config='[telemetry]\ninterval = "0.5s"\n') as a:
        a.wait_ready()
        a.wait_event("agent.ready")
        time.sleep(1.2)  # two collections, so rates exist
        yield a


def cli(agent, *args, target=None):
    return subprocess.run([sys.executable, "-m", "agent", *args, "--target",
                           target or f"unix:{agent.socket}"], capture_output=True, text=True, timeout=60)


def test_status_lists_collectors_and_exits_zero_when_healthy(agent):
    result = cli(agent, "status")
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[3:] if line.strip()}
    assert lines["cpu"] == "up" and lines["meminfo"] == "up"
    doc = json.loads(cli(agent, "status", "--json").stdout)
    assert doc["serving"] and doc["down"] == [] and doc["collectors"]["cpu"]["up"] == 1


def test_metrics_with_matchers_rates_and_window(agent):
    result = cli(agent, "metrics", "node_cpu_seconds_total", "-l", "cpu=0", "-l", "mode=~user|idle",
                 "--window", "1m")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith('node_cpu_seconds_total{cpu="0",mode="idle"} ')
    assert "rate=" in lines[0] and "p99=" in lines[0]
    doc = json.loads(cli(agent, "metrics", "node_load1", "--json").stdout)
    assert doc["families"][0]["info"]["name"] == "node_load1"
    assert doc["families"][0]["samples"][0]["value"] == pytest.approx(os.getloadavg()[0], abs=1.0)


def test_metrics_errors_name_the_problem(agent):
    result = cli(agent, "metrics", "no_such_metric")
    assert result.returncode == 2 and "selector.names[0]" in result.stderr
    result = cli(agent, "metrics", "-l", "cpu")
    assert result.returncode == 2 and "bad label matcher" in result.stderr


def test_inventory_shows_this_host(agent):
    result = cli(agent, "inventory")
    assert result.returncode == 0, result.stderr
    assert os.uname().nodename in result.stdout and os.uname().release in result.stdout
    doc = json.loads(cli(agent, "inventory", "--json").stdout)
    assert int(doc["cpu"]["threads"]) == os.cpu_count()
    assert sorted(n["name"] for n in doc.get("nics", [])) == sorted(
        n for n in os.listdir("/sys/class/net") if n != "lo")


def test_unreachable_agent_exits_three(agent, tmp_path):
    result = cli(agent, "status", target=f"unix:{tmp_path}/nothing.sock")
    assert result.returncode == 3 and "cannot reach the agent" in result.stderr
