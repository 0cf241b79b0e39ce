"""A holder of a certificate from the trusted CA tries to name itself into
another source's identity: ``uid:0`` (root on the unix socket, admin by
default) or ``insecure`` (the plaintext caller, a viewer).  Identities are
qualified by their source, so such a certificate is only ``cert:uid:0``,
which no roles table grants anything."""
import json
import os

import grpc
import pytest

from agent.gen.hostagent.v1 import operations_pb2, operations_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from tests.agent_process import AgentProcess
from tests.certs import make_pki

pytestmark = pytest.mark.integration


def tls_config(pki, identities: str = "") -> str:
    return f"""
[tls]
cert_file = "{pki.server.cert}"
key_file = "{pki.server.key}"
client_ca_file = "{pki.ca.cert_file}"
[auth.identities]
{identities}"""


def call(agent, pki, who, mutating: bool = False) -> grpc.StatusCode:
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.pem, private_key=who.key.read_bytes(),
                                         certificate_chain=who.cert.read_bytes())
    with grpc.secure_channel(agent.grpc_address, creds) as ch:
        try:
            if mutating:
                operations_pb2_grpc.OperationsStub(ch).CancelOperation(
                    operations_pb2.CancelOperationRequest(name="operations/x", request_id="r-1"), timeout=5)
            else:
                telemetry_pb2_grpc.TelemetryStub(ch).ListMetrics(telemetry_pb2.ListMetricsRequest(), timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def audit(agent) -> list[dict]:
    return [json.loads(line) for line in (agent.state / "audit.jsonl").read_text().splitlines()]


def test_a_certificate_cannot_name_itself_root_or_insecure(tmp_path):
    pki = make_pki(tmp_path)
    forged = {
        "cn uid:0": pki.ca.issue("cn-uid0", "uid:0"),
        "uri uid:0": pki.ca.issue("uri-uid0", "someone", uris=("uid:0",)),
        "dns uid:0": pki.ca.issue("dns-uid0", None, dns=("uid:0",)),
        "own uid": pki.ca.issue("own-uid", f"uid:{os.geteuid()}"),
        "cn unix:uid:0": pki.ca.issue("cn-unix-uid0", "unix:uid:0"),
        "cn insecure": pki.ca.issue("cn-insecure", "insecure"),
    }
    with AgentProcess(tmp_path, config=tls_config(pki)) as agent:
        agent.wait_ready()
        for what, cert in forged.items():
            assert call(agent, pki, cert) is grpc.StatusCode.UNAUTHENTICATED, what
            assert call(agent, pki, cert, mutating=True) is grpc.StatusCode.UNAUTHENTICATED, what
        denied = {r["identity"] for r in audit(agent) if r["decision"] == "deny"}
    # The trail names the qualified identity: nobody reading it mistakes the
    # certificate for root.
    assert {"cert:uid:0", f"cert:uid:{os.geteuid()}", "cert:unix:uid:0", "cert:insecure"} <= denied
    assert not denied & {"uid:0", "unix:uid:0", "insecure"}


def test_qualified_and_legacy_role_keys(tmp_path):
    """``cert:NAME`` grants a certificate; an unqualified key from an older
    roles table is read as it was meant (a certificate name, ``uid:N`` a unix
    peer) and logged, so an upgrade locks nobody out and lets nobody in."""
    pki = make_pki(tmp_path)
    with AgentProcess(tmp_path, config=tls_config(
            pki, '"cert:spiffe://test/operator" = "operator"\nviewer = "viewer"\n"uid:0" = "admin"\n')) as agent:
        agent.wait_ready()
        assert call(agent, pki, pki.operator) is grpc.StatusCode.OK
        assert call(agent, pki, pki.viewer) is grpc.StatusCode.OK
        assert call(agent, pki, pki.admin) is grpc.StatusCode.UNAUTHENTICATED
        legacy = {e["written"]: e["read_as"] for e in agent.events("auth.unqualified_identity")}
        assert legacy == {"viewer": "cert:viewer", "uid:0": "unix:uid:0"}
        # The unix socket's root is unix:uid:N, recorded so in the trail.
        with grpc.insecure_channel(f"unix:{agent.socket}") as ch:
            with pytest.raises(grpc.RpcError) as err:
                operations_pb2_grpc.OperationsStub(ch).CancelOperation(
                    operations_pb2.CancelOperationRequest(name="operations/00000000-0000-4000-8000-000000000000", request_id="r-2"), timeout=5)
        assert err.value.code() is grpc.StatusCode.NOT_FOUND  # allowed, then not found
        mine = [r for r in audit(agent) if r["request_id"] == "r-2"]
        assert [r["identity"] for r in mine] == [f"unix:uid:{os.geteuid()}"]
        assert mine[0]["status"] == "NOT_FOUND" and mine[0]["message"].startswith("operation '")
