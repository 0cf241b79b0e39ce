"""Roles come from config and a roles file; a bad roles file stops the start,
a bad one at reload keeps the last good one; plaintext off-host warns."""
import signal
import subprocess
import sys

import grpc
import pytest

from agent.features import declared_collectors
from agent.config import load_config
from agent.gen.hostagent.v1 import telemetry_pb2, telemetry_pb2_grpc
from agent.logs import setup_logging
from agent.security.access import Access
from tests.agent_process import AgentProcess
from tests.certs import make_pki
from tests.test_security_e2e import config

pytestmark = pytest.mark.integration


def list_metrics(agent, pki, who):
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.pem, private_key=who.key.read_bytes(),
                                         certificate_chain=who.cert.read_bytes())
    with grpc.secure_channel(agent.grpc_address, creds) as ch:
        try:
            telemetry_pb2_grpc.TelemetryStub(ch).ListMetrics(telemetry_pb2.ListMetricsRequest(), timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def test_roles_file_reload_applies_and_a_bad_one_keeps_the_last_good(tmp_path):
    pki = make_pki(tmp_path)
    guest = pki.ca.issue("guest", cn="guest")
    roles = tmp_path / "roles.toml"
    roles.write_text("[identities]\n")
    with AgentProcess(tmp_path, config=config(pki, f'[auth]\nroles_file = "{roles}"\n')) as agent:
        agent.wait_ready()
        assert list_metrics(agent, pki, guest) is grpc.StatusCode.UNAUTHENTICATED
        roles.write_text('[identities]\n"cert:guest" = "viewer"\n')
        mark = len(agent.lines)
        agent.signal(signal.SIGHUP)
        agent.wait_event("auth.reloaded", start=mark)
        assert list_metrics(agent, pki, guest) is grpc.StatusCode.OK
        roles.write_text('[identities]\n"cert:guest" = "superuser"\n')
        mark = len(agent.lines)
        agent.signal(signal.SIGHUP)
        failed = agent.wait_event("auth.reload_failed", start=mark)
        assert "superuser" in failed["error"]
        assert list_metrics(agent, pki, guest) is grpc.StatusCode.OK  # last good roles kept


def test_bad_roles_file_stops_the_start(tmp_path):
    roles = tmp_path / "roles.toml"
    roles.write_text('[identities]\n"uid:0" = "root"\n')
    cfg = tmp_path / "hostagent.toml"
    cfg.write_text(f'[auth]\nroles_file = "{roles}"\n')
    result = subprocess.run([sys.executable, "-m", "agent", "serve", "--config", str(cfg),
                             "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "",
                             "--grpc-socket", "", "--state-dir", str(tmp_path / "state")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and str(roles) in result.stderr and "root" in result.stderr


class RecordingServer:
    """Stands in for grpc.Server: records the listeners without binding them."""

    def __init__(self):
        self.ports = []

    def add_insecure_port(self, address):
        self.ports.append(address)
        return 9447


def test_plaintext_off_host_listener_warns_at_every_start(tmp_path, capsys):
    setup_logging("info", "logfmt")
    cfg = load_config(None, known_collectors=[c.name for c in declared_collectors()], overrides={
        "server.grpc_listen": "0.0.0.0:9447", "server.insecure": True, "server.grpc_socket": "",
        "state_dir": str(tmp_path)})
    access = Access(cfg)
    server = RecordingServer()
    assert access.bind(server) == ["0.0.0.0:9447"] and server.ports == ["0.0.0.0:9447"]
    access.close()
    err = capsys.readouterr().err
    assert "event=security.insecure_listener" in err and "level=warning" in err


def test_a_viewer_may_list_and_check_health(tmp_path):
    """Health.List (newer than Check and Watch) is a viewer's right too."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    pki = make_pki(tmp_path)
    with AgentProcess(tmp_path, config=config(pki)) as agent:
        agent.wait_ready()
        creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.pem,
                                             private_key=pki.viewer.key.read_bytes(),
                                             certificate_chain=pki.viewer.cert.read_bytes())
        with grpc.secure_channel(agent.grpc_address, creds) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            listed = stub.List(health_pb2.HealthListRequest(), timeout=5)
            assert listed.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
            assert "hostagent.v1.Telemetry" in listed.statuses
            assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
