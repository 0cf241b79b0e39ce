"""The whole agent behind mutual TLS, as a control plane and an auditor meet
it: roles on every method (enumerated from the descriptors), idempotent
operations across restarts and kill -9, limits, the audit trail, and a
canary secret that must never leak."""
import importlib
import json
import os
import pkgutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import agent.gen.hostagent.v1
from agent.gen.hostagent.v1 import operations_pb2, operations_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from agent.security.policy import method_rules
from tests import testing_service as ts
from tests.agent_process import AgentProcess
from tests.certs import make_pki

pytestmark = pytest.mark.integration
CANARY = "canary-Pa55w0rd-7f3a9c"


def served_services(channel) -> list:
    """Every service the running agent serves (from its reflection), as
    descriptors of the generated modules: a service added later is covered
    without editing this test."""
    for module in pkgutil.iter_modules(agent.gen.hostagent.v1.__path__):
        if module.name.endswith("_pb2"):
            importlib.import_module(f"agent.gen.hostagent.v1.{module.name}")
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]), timeout=5))
    names = [s.name for s in reply.list_services_response.service
             if not s.name.startswith("grpc.")]
    pool = descriptor_pool.Default()
    return [pool.FindServiceByName(name) for name in sorted(names)]


def config(pki, extra=""):
    return f"""
[log]
level = "debug"
[telemetry]
interval = "1s"
[tls]
cert_file = "{pki.server.cert}"
key_file = "{pki.server.key}"
client_ca_file = "{pki.ca.cert_file}"
[auth.identities]
"cert:viewer" = "viewer"
"cert:spiffe://test/operator" = "operator"
"cert:admin.test" = "admin"
{extra}"""


class Node:
    """The agent with the test-only Mutator, and clients per identity."""

    def __init__(self, tmp: Path, pki, extra: str = ""):
        self.tmp, self.pki = tmp, pki
        self.side_effects = tmp / "side_effects"
        self.side_effects.touch()
        self.proc = AgentProcess(tmp, config=config(pki, extra), module="tests.agent_with_test_ops",
                                 env={"HOSTAGENT_TEST_SIDE_EFFECTS": str(self.side_effects)})
        self.proc.wait_ready()

    def channel(self, who) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.pki.ca.pem,
            private_key=who.key.read_bytes() if who else None,
            certificate_chain=who.cert.read_bytes() if who else None)
        return grpc.secure_channel(self.proc.grpc_address, creds)

    def touches(self) -> list[str]:
        return self.side_effects.read_text().splitlines()

    def audit(self) -> list[dict]:
        path = self.proc.state / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def restart(self) -> None:
        if self.proc.proc.poll() is None:
            assert self.proc.stop() == 0
        self.proc = AgentProcess(self.tmp, config=config(self.pki), module="tests.agent_with_test_ops",
                                 env={"HOSTAGENT_TEST_SIDE_EFFECTS": str(self.side_effects)})
        self.proc.wait_ready()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def node(tmp_path, pki):
    n = Node(tmp_path, pki)
    yield n
    n.proc.stop()


def call(channel, service, method, request=None, timeout=5.0):
    """Call any method by descriptor; return (status code, response or None)."""
    path = f"/{service.full_name}/{method.name}"
    request = request or message_factory.GetMessageClass(method.input_type)()
    reply = message_factory.GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=reply.FromString)(request, timeout=timeout)
            first = next(stream, None)
            stream.cancel()
            return grpc.StatusCode.OK, first
        return grpc.StatusCode.OK, channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply.FromString)(request, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def touch(channel, request_id, name="a", password="", sleep_ms=0, method="Touch"):
    req = ts.TouchRequest(request_id=request_id, name=name, password=password, sleep_ms=sleep_ms)
    return call(channel, ts.SERVICE, ts.SERVICE.methods_by_name[method], req)


def test_every_method_enforces_its_role(node, pki):
    with node.channel(pki.viewer) as viewer:
        services = served_services(viewer)
    assert {"hostagent.v1.Bmc", "hostagent.v1.Operations", ts.SERVICE.full_name} <= \
        {s.full_name for s in services}
    rules = method_rules({s.file for s in services})
    mutating = [(s, m) for s in services for m in s.methods if rules[f"/{s.full_name}/{m.name}"].mutating]
    assert len(mutating) >= 7  # CancelOperation, Touch, Wipe, Bmc's Set*/Clear*
    with node.channel(pki.viewer) as viewer:
        for service, method in mutating:
            code, details = call(viewer, service, method)
            assert code is grpc.StatusCode.PERMISSION_DENIED, (method.full_name, code, details)
            assert "viewer" in details
        for service in services:  # every read is open to a viewer
            for method in service.methods:
                if not rules[f"/{service.full_name}/{method.name}"].mutating:
                    code, _ = call(viewer, service, method)
                    assert code not in (grpc.StatusCode.PERMISSION_DENIED,
                                        grpc.StatusCode.UNAUTHENTICATED), method.full_name
    denials = {(r["identity"], r["method"]) for r in node.audit() if r["decision"] == "deny"}
    for service, method in mutating:
        assert ("cert:viewer", f"/{service.full_name}/{method.name}") in denials
    with node.channel(pki.operator) as operator:
        assert touch(operator, "op-1")[0] is grpc.StatusCode.OK
        code, details = touch(operator, "op-2", method="Wipe")  # admin only
        assert code is grpc.StatusCode.PERMISSION_DENIED and "needs admin" in details
    with node.channel(pki.admin) as admin:
        assert touch(admin, "adm-1", name="b", method="Wipe")[0] is grpc.StatusCode.OK
    stranger = pki.ca.issue("stranger", cn="stranger")
    with node.channel(stranger) as ch:
        code, details = call(ch, telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"],
                             telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"].methods_by_name["ListMetrics"])
        assert code is grpc.StatusCode.UNAUTHENTICATED and "stranger" in details


@pytest.mark.parametrize("who", ["none", "untrusted_client", "expired_client"])
def test_handshake_fails_without_a_trusted_valid_certificate(node, pki, who):
    cert = None if who == "none" else getattr(pki, who)
    with node.channel(cert) as ch:
        code, _ = call(ch, telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"],
                       telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"].methods_by_name["ListMetrics"],
                       timeout=3)
    assert code is grpc.StatusCode.UNAVAILABLE


def wait_done(channel, name, timeout=20):
    stub = operations_pb2_grpc.OperationsStub(channel)
    req = operations_pb2.WaitOperationRequest(name=name)
    req.timeout.FromSeconds(int(timeout))
    return stub.WaitOperation(req, timeout=timeout + 5)


def test_one_request_id_fifty_calls_one_side_effect_also_after_restart(node, pki):
    answers = []

    def worker():  # calls beyond server.max_concurrent_rpcs are refused at once: retry them
        with node.channel(pki.operator) as ch:
            answer = touch(ch, "req-50", name="x", password=CANARY)
            while answer[0] is grpc.StatusCode.RESOURCE_EXHAUSTED:
                time.sleep(0.05)
                answer = touch(ch, "req-50", name="x", password=CANARY)
            answers.append(answer)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 50 and all(code is grpc.StatusCode.OK for code, _ in answers)
    names = {op.name for _, op in answers}
    assert len(names) == 1
    with node.channel(pki.operator) as ch:
        done = wait_done(ch, names.pop())
        assert done.state == operations_pb2.OPERATION_STATE_SUCCEEDED
        code, details = touch(ch, "req-50", name="other")
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("request_id")
    assert len(node.touches()) == 1
    node.restart()
    with node.channel(pki.operator) as ch:
        code, again = touch(ch, "req-50", name="x", password=CANARY)
    assert code is grpc.StatusCode.OK and again.name == done.name
    assert len(node.touches()) == 1


def test_kill_9_during_an_operation_leaves_a_terminal_state(node, pki):
    with node.channel(pki.operator) as ch:
        _, op = touch(ch, "slow-1", name="slow", sleep_ms=30000)
        stub = operations_pb2_grpc.OperationsStub(ch)
        deadline = time.monotonic() + 10
        while stub.GetOperation(operations_pb2.GetOperationRequest(name=op.name), timeout=5).state \
                != operations_pb2.OPERATION_STATE_RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
    node.proc.proc.send_signal(signal.SIGKILL)
    node.proc.proc.wait(10)
    with sqlite3.connect(node.proc.state / "operations.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    node.restart()
    with node.channel(pki.viewer) as ch:
        after = operations_pb2_grpc.OperationsStub(ch).GetOperation(
            operations_pb2.GetOperationRequest(name=op.name), timeout=5)
    assert after.state == operations_pb2.OPERATION_STATE_FAILED
    assert after.error.code == grpc.StatusCode.ABORTED.value[0] and "restart" in after.error.message
    assert node.touches() == []


def test_limits_streams_per_identity_and_concurrent_calls(tmp_path, pki):
    node = Node(tmp_path, pki, extra="[server]\nmax_streams_per_identity = 2\nmax_concurrent_rpcs = 6\n")
    try:
        with node.channel(pki.viewer) as ch:
            stub = telemetry_pb2_grpc.TelemetryStub(ch)
            req = telemetry_pb2.StreamMetricsRequest(selector=telemetry_pb2.MetricSelector(names=["node_load1"]))
            held = [stub.StreamMetrics(req, timeout=30) for _ in range(2)]
            for s in held:
                next(s)
            with pytest.raises(grpc.RpcError) as err:
                next(stub.StreamMetrics(req, timeout=30))
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            for s in held:
                s.cancel()
        with node.channel(pki.operator) as ch:
            _, op = touch(ch, "long", name="long", sleep_ms=20000)
            # A WaitOperation holds a worker like a stream: 2 per identity,
            # so 6 calls in flight take three identities.
            chans = [node.channel(who) for who in (pki.viewer, pki.admin)]
            waits = []
            for c in (ch, *chans):
                waits += [operations_pb2_grpc.OperationsStub(c).WaitOperation.future(
                    operations_pb2.WaitOperationRequest(name=op.name), timeout=20) for _ in range(2)]
                if c is ch:
                    time.sleep(0.5)
                    ops = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
                    code, details = call(ch, ops, ops.methods_by_name["WaitOperation"],
                                         operations_pb2.WaitOperationRequest(name=op.name))
                    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "waits" in details
            time.sleep(1.0)
            t0 = time.monotonic()
            code, _ = call(ch, telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"],
                           telemetry_pb2.DESCRIPTOR.services_by_name["Telemetry"].methods_by_name["ListMetrics"])
            assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() - t0 < 2
            for w in waits:
                w.cancel()
            for c in chans:
                c.close()
    finally:
        node.proc.stop()


def test_canary_secret_never_leaks(node, pki):
    errors = []
    with node.channel(pki.operator) as ch:
        code, op = touch(ch, "canary-1", name="c", password=CANARY)
        assert code is grpc.StatusCode.OK
        wait_done(ch, op.name)
        errors.append(touch(ch, "canary-2", name="", password=CANARY))  # invalid: rejected
        errors.append(touch(ch, "canary-1", name="d", password=CANARY))  # request_id reuse
    with node.channel(pki.viewer) as ch:
        errors.append(touch(ch, "canary-3", name="e", password=CANARY))  # denied
    assert [code for code, _ in errors] == [grpc.StatusCode.INVALID_ARGUMENT,
                                            grpc.StatusCode.INVALID_ARGUMENT,
                                            grpc.StatusCode.PERMISSION_DENIED]
    assert all(CANARY not in details for _, details in errors)
    audit_text = (node.proc.state / "audit.jsonl").read_text()
    assert CANARY not in audit_text and '"password": "***"' in audit_text.replace('":"', '": "')
    node.proc.stop()
    assert node.proc.events("rpc.denied") and CANARY not in "\n".join(node.proc.lines)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert CANARY.encode() not in cmdline.read_bytes(), cmdline
        except OSError:
            pass  # the process ended meanwhile


def test_audit_verify_detects_an_edited_and_a_deleted_line(node, pki):
    with node.channel(pki.viewer) as ch:
        for i in range(4):
            touch(ch, f"deny-{i}")  # four denials: four records
    node.proc.stop()
    path = node.proc.state / "audit.jsonl"
    verify = lambda: subprocess.run([sys.executable, "-m", "agent", "audit", "verify", str(path)],  # noqa: E731
                                    capture_output=True, text=True, timeout=30)
    ok = verify()
    assert ok.returncode == 0 and "records" in ok.stdout
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) >= 4
    original = "".join(lines)
    path.write_text("".join(lines[:1] + [lines[1].replace('"cert:viewer"', '"cert:admin.test"')] + lines[2:]))
    bad = verify()
    assert bad.returncode == 1 and "line 2" in bad.stderr  # the edited line itself
    path.write_text("".join(lines[:1] + lines[2:]))
    bad = verify()
    assert bad.returncode == 1 and "TAMPERED" in bad.stderr
    path.write_text(original)
    assert verify().returncode == 0


def test_unix_socket_caller_is_identified_by_uid(node, pki):
    with grpc.insecure_channel(f"unix:{node.proc.socket}") as ch:
        code, op = touch(ch, "uds-1", name="u")
    assert code is grpc.StatusCode.OK and op.identity == f"unix:uid:{os.getuid()}"
    records = [r for r in node.audit() if r["request_id"] == "uds-1"]
    assert records and records[0]["identity"] == f"unix:uid:{os.getuid()}"
    assert records[0]["decision"] == "allow" and records[0]["status"] == "OK"
