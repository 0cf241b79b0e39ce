"""The operator CLI against a running agent, over its unix socket."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

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
    return subprocess.run([sys.executable, "-m", "agent", *args, "--agent",
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


def run(*args, env=None, **kwargs):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          timeout=60, env=full_env, **kwargs)


def sample_lines(agent) -> list[str]:
    text = urllib.request.urlopen(agent.metrics_url, timeout=5).read().decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_help_shows_the_whole_description_and_the_exit_codes():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert ("hostagent runs the per-node agent (serve), checks its config and its audit trail, and "
            "talks to a running agent the way an operator would") in text
    assert "its host networking (network) and its sampled traffic (flows)." in text and "``" not in result.stdout
    assert "2 usage error; 3 agent unreachable" in text and "141 output pipe closed" in text
    status_help = run("status", "--help").stdout
    assert "--agent ADDR" in status_help and "--cert FILE" in status_help
    assert "--target" not in status_help  # the deprecated alias is hidden
    assert "-t BMC, --target BMC" in run("bmc", "sensors", "--help").stdout


def test_target_for_the_agent_still_works_with_a_notice(agent):
    result = run("status", "--target", f"unix:{agent.socket}")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "hostagent: --target is deprecated here and goes away in the next release; use --agent "
        "(-t/--target names a BMC, in 'hostagent bmc')"]


def test_agent_from_the_environment(agent, tmp_path):
    result = run("status", env={"HOSTAGENT_AGENT": f"unix:{agent.socket}"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    result = run("status", env={"HOSTAGENT_TARGET": f"unix:{agent.socket}"})
    assert result.returncode == 0 and "$HOSTAGENT_TARGET is deprecated" in result.stderr
    # The command line wins over the environment.
    result = run("status", "--agent", f"unix:{agent.socket}",
                 env={"HOSTAGENT_AGENT": f"unix:{tmp_path}/nothing.sock"})
    assert result.returncode == 0, result.stderr


def test_a_closed_pipe_ends_quietly(agent):
    # The reader is gone before the first write: exit 141 (what a shell
    # reports for `ls | head`), nothing on stderr.
    proc = subprocess.Popen([sys.executable, "-m", "agent", "metrics", "--agent", f"unix:{agent.socket}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == b""
    # As an operator types it.
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m agent metrics --agent "
                            f"unix:{agent.socket} | head -1"], capture_output=True, text=True, timeout=60)
    assert len(shell.stdout.splitlines()) == 1 and shell.stderr == ""
    assert shell.returncode in (0, 141)  # 0 when all of it fit in the pipe before head left


def test_values_for_people(agent):
    rss = cli(agent, "metrics", "process_resident_memory_bytes").stdout
    assert re.fullmatch(r"process_resident_memory_bytes \d+\.\d MB\n", rss), rss
    # netdev's netns label is "" for the agent's own namespace: not shown
    lo = cli(agent, "metrics", "node_network_receive_bytes_total", "-l", "device=lo").stdout
    assert re.fullmatch(r'node_network_receive_bytes_total\{device="lo"\} [\d.]+ [kMG]?B'
                        r'  rate=[\d.]+ [kMG]?B/s\n', lo), lo
    raw = cli(agent, "metrics", "process_resident_memory_bytes", "process_open_fds", "--raw").stdout
    assert re.fullmatch(r"process_open_fds \d+\nprocess_resident_memory_bytes \d{7,}\n", raw), raw
    status = cli(agent, "status").stdout
    assert re.search(r"^series:     \d+ ", status, re.M)


def test_json_integers_are_integers(agent):
    doc = json.loads(cli(agent, "metrics", "hostagent_collector_up", "--json").stdout)
    assert {type(s["value"]) for s in doc["families"][0]["samples"]} == {int}
    doc = json.loads(cli(agent, "status", "--json").stdout)
    assert type(doc["series"]) is int and type(doc["collectors"]["cpu"]["errors"]) is int
    doc = json.loads(cli(agent, "inventory", "--json").stdout)
    assert type(doc["memory"]["total_bytes"]) is int and doc["cpu"]["threads"] == os.cpu_count()


def test_a_glob_that_matches_nothing_exits_one(agent):
    result = cli(agent, "metrics", "nosuch_*")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "hostagent: no series matches 'nosuch_*'\n"
    result = cli(agent, "metrics", "node_load1", "nosuch_*")
    assert result.returncode == 1 and result.stdout.startswith("node_load1 ")
    result = cli(agent, "metrics", "node_load*", "-l", "cpu=0")
    assert result.returncode == 1 and result.stderr == "hostagent: no series matches 'node_load*' with -l cpu=0\n"


def test_status_counts_the_series_metrics_serves(agent):
    deadline = time.monotonic() + 10
    while True:  # the count is the agent's at its last collection: wait for a quiet moment
        before = sample_lines(agent)
        doc = json.loads(cli(agent, "status", "--json").stdout)
        after = sample_lines(agent)
        gauge = [line for line in after if line.startswith("hostagent_series ")]
        if len(before) == len(after) == doc["series"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert doc["series"] == len(after) == float(gauge[0].split()[1])


def test_client_commands_import_no_server_code(agent):
    code = ("import sys; from agent.cli import main; rc = main(['status', '--agent', sys.argv[1]]); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('agent.'))), file=sys.stderr); "
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, f"unix:{agent.socket}"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = result.stderr.split()
    server = [m for m in loaded if m.split(".")[1] in ("daemon", "api", "collectors", "telemetry",
                                                       "operations", "security", "inventory",
                                                       "backends", "bmc", "audit", "exposition")]
    assert server == [] and "agent.cli.telemetry" in loaded


def test_connection_usage_errors(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    result = run("status", "--cert", str(cert))
    assert result.returncode == 2 and result.stderr.startswith("hostagent: --cert needs a key too")
    result = run("status", "--cert", str(cert), "--key", str(tmp_path / "missing.pem"))
    assert result.returncode == 2 and "--key: cannot read" in result.stderr
    result = run("status", "--agent", "unix:/x.sock", "--ca", str(cert))
    assert result.returncode == 2 and "TLS options are for a HOST:PORT address" in result.stderr
    conf = tmp_path / "client.toml"
    conf.write_text('[client]\nagent = "127.0.0.1:1"\ncertificate = "c.pem"\n')
    result = run("status", "--client-config", str(conf))
    assert result.returncode == 2 and "client.certificate: unknown key" in result.stderr


def test_status_before_the_first_collection_is_not_a_usage_error(tmp_path):
    # With a 1 h interval the agent's own collector ran once, before any
    # other collector had: no hostagent_collector_* family exists yet.
    with AgentProcess(tmp_path, config='[telemetry]\ninterval = "1h"\nretention = "2h"\n') as a:
        a.wait_ready()
        result = run("status", "--agent", f"unix:{a.socket}")
        assert result.returncode == 0, result.stderr
        assert "SERVING" in result.stdout


def test_audit_verify_of_a_missing_file_is_one_line(tmp_path):
    result = run("audit", "verify", str(tmp_path / "audit.jsonl"))
    assert result.returncode == 2
    assert result.stderr == f"hostagent: cannot read {tmp_path}/audit.jsonl: No such file or directory\n"
