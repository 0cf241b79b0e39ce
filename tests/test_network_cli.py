"""``hostagent network ...`` as an operator runs it: the CLI as a subprocess,
over the unix socket (root: admin), to the real agent running inside a
namespace the test creates (tests/network_agent.py), so every change lands
in that namespace's kernel, checked with ``ip -j``."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.agent_process import AgentProcess
from tests.netns import ip, namespace, require_netns

pytestmark = [pytest.mark.integration, pytest.mark.netns]

CONFIG = """\
interfaces:
  - name: br0
    type: linux-bridge
    state: up
    bridge: {port: []}
    ipv4:
      enabled: true
      address:
        - {ip: 10.9.0.1, prefix-length: 24}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_netns()
    tmp = tmp_path_factory.mktemp("cli_network")
    with namespace() as ns:
        agent = AgentProcess(tmp, module="tests.network_agent", env={"HOSTAGENT_TEST_NETNS": ns})
        try:
            agent.wait_ready()
            (tmp / "tenant.yml").write_text(CONFIG)
            yield agent, ns, tmp
        finally:
            agent.stop()


def net(env, *args, stdin: str | None = None):
    agent, _, _ = env
    return subprocess.run([sys.executable, "-m", "agent", "network", *args, "--agent", f"unix:{agent.socket}"],
                          capture_output=True, text=True, timeout=60, input=stdin)


def links(ns: str) -> set[str]:
    return {l["ifname"] for l in json.loads(ip("-j", "link", "show", ns=ns))}


def test_show_prints_nmstate_yaml_that_apply_takes_back(env):
    _, ns, _ = env
    out = net(env, "show")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    lo = next(i for i in doc["interfaces"] if i["name"] == "lo")
    assert lo["type"] == "loopback" and lo["ipv4"]["address"] == [{"ip": "127.0.0.1", "prefix-length": 8}]
    typed = json.loads(net(env, "show", "--json").stdout)
    assert "lo" in [i["name"] for i in typed["state"]["interfaces"]]


def test_dry_run_apply_confirm_and_rollback(env):
    _, ns, tmp = env
    out = net(env, "apply", str(tmp / "tenant.yml"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\s+1\. link\.add br0: ", out.stdout, re.M) and "addr.add br0" in out.stdout
    assert "br0" not in links(ns)

    out = net(env, "apply", str(tmp / "tenant.yml"), "--confirm-timeout", "1m")
    assert out.returncode == 0, out.stderr
    assert "rolled back at" in out.stdout and "unless confirmed" in out.stdout
    assert re.search(r"network apply: operations/\S+ \(request id [0-9a-f-]{36}\)", out.stderr)
    assert "br0" in links(ns)
    busy = net(env, "apply", "-", stdin="interfaces: []\n")
    assert busy.returncode == 1 and "FAILED_PRECONDITION" in busy.stderr and "awaits confirmation" in busy.stderr
    shown = net(env, "show", "--managed")
    assert "awaits confirmation until" in shown.stderr
    assert [i["name"] for i in yaml.safe_load(shown.stdout)["interfaces"]] == ["br0"]

    out = net(env, "confirm")
    assert out.returncode == 0 and "confirmed" in out.stdout, out.stderr
    again = net(env, "apply", str(tmp / "tenant.yml"))
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr
    assert "no changes" in again.stderr

    out = net(env, "rollback")
    assert out.returncode == 0 and "rolled back" in out.stdout, out.stderr
    assert "br0" not in links(ns)


def test_errors_name_the_field_and_exit_codes_say_what_failed(env):
    _, _, tmp = env
    bad = net(env, "apply", "-", stdin="interfaces: [{name: br0, type: linux-bridge, bridge: {port: []}, "
                                       "speed: 10}]\n")
    assert bad.returncode == 2 and "INVALID_ARGUMENT" in bad.stderr  # the agent's usage error
    assert "desired.interfaces[0].speed" in bad.stderr
    missing = net(env, "apply", str(tmp / "nope.yml"))
    assert missing.returncode == 2 and "nope.yml" in missing.stderr
    assert net(env, "apply", str(tmp / "tenant.yml"), "--confirm-timeout", "soon").returncode == 2
