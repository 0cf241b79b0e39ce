"""``hostagent status``/``metrics`` against a remote agent over mutual TLS:
the real agent with ``[tls]``, the CLI as a subprocess with a client
certificate from tests/certs.py (flags, environment, ``--client-config``)."""
import json
import os
import subprocess
import sys

import pytest

from tests.agent_process import AgentProcess
from tests.certs import make_pki

pytestmark = pytest.mark.integration


def config(pki, server) -> str:
    return f"""
[telemetry]
interval = "0.5s"
[tls]
cert_file = "{server.cert}"
key_file = "{server.key}"
client_ca_file = "{pki.ca.cert_file}"
[auth.identities]
"cert:viewer" = "viewer"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory, pki):
    """Its certificate names 127.0.0.1, ::1 and localhost."""
    with AgentProcess(tmp_path_factory.mktemp("tls"), config=config(pki, pki.server)) as a:
        a.wait_ready()
        a.wait_event("agent.ready")
        yield a


def hostagent(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          timeout=60, env=full_env)


def tls_flags(pki, who):
    return ["--cert", str(who.cert), "--key", str(who.key), "--ca", str(pki.ca.cert_file)]


def test_status_and_metrics_over_mutual_tls(agent, pki):
    result = hostagent("status", "--agent", agent.grpc_address, *tls_flags(pki, pki.viewer))
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout and result.stderr == ""
    result = hostagent("metrics", "node_load1", "--agent", agent.grpc_address, *tls_flags(pki, pki.viewer))
    assert result.returncode == 0 and result.stdout.startswith("node_load1 "), result.stderr
    # The agent knows callers by their certificate: admin.test is not in [auth.identities].
    result = hostagent("status", "--agent", agent.grpc_address, *tls_flags(pki, pki.admin))
    assert result.returncode == 1
    assert result.stderr == ("hostagent: UNAUTHENTICATED: identity 'cert:admin.test' is not known "
                             "to this agent\n")


def test_the_same_from_the_environment_and_from_a_client_config(agent, pki, tmp_path):
    env = {"HOSTAGENT_AGENT": agent.grpc_address, "HOSTAGENT_CERT": str(pki.viewer.cert),
           "HOSTAGENT_KEY": str(pki.viewer.key), "HOSTAGENT_CA": str(pki.ca.cert_file)}
    result = hostagent("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["serving"] is True

    # Paths in the file are relative to it.
    conf = pki.ca.cert_file.parent / "client.toml"
    conf.write_text(f'[client]\nagent = "{agent.grpc_address}"\ncert = "{pki.viewer.cert.name}"\n'
                    f'key = "{pki.viewer.key.name}"\nca = "{pki.ca.cert_file.name}"\n')
    result = hostagent("status", "--client-config", str(conf))
    assert result.returncode == 0, result.stderr
    result = hostagent("status", env={"HOSTAGENT_CLIENT_CONFIG": str(conf)})
    assert result.returncode == 0, result.stderr


def test_without_a_trusted_client_certificate_the_agent_is_unreachable(agent, pki):
    port = agent.grpc_address.rsplit(":", 1)[1]
    cases = {
        "no client certificate": ["--ca", str(pki.ca.cert_file)],
        "another CA's certificate": ["--cert", str(pki.untrusted_client.cert), "--key",
                                     str(pki.untrusted_client.key), "--ca", str(pki.ca.cert_file)],
        "plaintext": [],
    }
    for what, flags in cases.items():
        result = hostagent("status", "--agent", f"127.0.0.1:{port}", "--timeout", "3", *flags)
        assert result.returncode == 3, (what, result.stderr)
        assert result.stderr.startswith(f"hostagent: cannot reach the agent at 127.0.0.1:{port}: "), what


def test_server_name_when_the_address_is_not_in_the_certificate(tmp_path, pki):
    node7 = pki.ca.issue("node7", "node7", dns=("node7.test",), server=True)
    with AgentProcess(tmp_path, config=config(pki, node7)) as a:
        a.wait_ready()
        flags = ["--agent", a.grpc_address, "--timeout", "3", *tls_flags(pki, pki.viewer)]
        result = hostagent("status", *flags)
        assert result.returncode == 3, result.stderr  # 127.0.0.1 is not in node7's certificate
        result = hostagent("status", *flags, "--server-name", "node7.test")
        assert result.returncode == 0, result.stderr
        result = hostagent("status", *flags, env={"HOSTAGENT_SERVER_NAME": "node7.test"})
        assert result.returncode == 0, result.stderr
        result = hostagent("status", *flags, "--server-name", "node8.test")
        assert result.returncode == 3, result.stderr
