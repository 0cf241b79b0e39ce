"""Starts and reloads in a hostile place, as an operator meets them: a live
agent already on the unix socket, ports taken, a state directory that is a
file, a corrupt journal, a SIGHUP with a [tls] section the next start would
refuse, and a kill -9 between the journal write and the audit record.

A failed start must end in exactly one ``agent.start_failed`` line that
names the file or address and says what to do, no traceback, and an exit
code systemd acts on (2: fix the config or the files, no restart; 1: may
clear by itself, systemd retries)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.audit import AuditLog
from agent.gen.hostagent.v1 import telemetry_pb2, telemetry_pb2_grpc
from agent.operations.journal import INTERRUPTED, NOT_STARTED, Journal
from agent.operations.manager import OperationKind, OperationManager
from agent.operations.model import Operation, OperationState as S, args_hash
from agent.operations.reconcile import reconcile, unfinished
from agent.security.peercred import PeerCredProxy, SocketInUse
from tests.agent_process import AgentProcess
from tests.certs import make_pki

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
FAST = '[telemetry]\ninterval = "0.5s"\ntimeout = "2s"\n'


def failed_start(agent: AgentProcess, timeout: float = 30.0) -> tuple[int, dict[str, str]]:
    """(exit code, the one start_failed line) of an agent that must not start."""
    rc = agent.proc.wait(timeout)
    deadline = time.monotonic() + 5
    while not agent.eof and time.monotonic() < deadline:
        time.sleep(0.02)
    log = "\n".join(agent.lines)
    assert "Traceback" not in log, log
    failures = agent.events("agent.start_failed")
    assert len(failures) == 1, log
    assert not agent.events("agent.ready"), log
    return rc, failures[0]


def held_port() -> socket.socket:
    """A TCP port another process listens on."""
    return socket.create_server(("127.0.0.1", 0))


def health_over(target: str) -> int:
    with grpc.insecure_channel(target) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status


# -- item 4: a second agent and the unix socket --------------------------------

def test_a_listening_socket_is_not_replaced_and_its_holder_is_named(tmp_path):
    path = str(tmp_path / "live.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen(1)
    inode = os.stat(path).st_ino
    try:
        proxy = PeerCredProxy(path, ("127.0.0.1", 1))
        with pytest.raises(SocketInUse) as refused:
            proxy.start()
        assert f"pid {os.getpid()}" in refused.value.holder
        assert os.stat(path).st_ino == inode  # not unlinked
        proxy.close()
        assert os.stat(path).st_ino == inode  # nor by close()
    finally:
        live.close()


def test_a_second_agent_leaves_the_live_agents_socket_alone(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with AgentProcess(tmp_path / "a", config=FAST) as first:
        first.wait_ready()
        inode = os.stat(first.socket).st_ino
        second = AgentProcess(tmp_path / "b", "--grpc-socket", str(first.socket), config=FAST)
        try:
            rc, failed = failed_start(second)
        finally:
            second.stop()
        assert rc == 1  # systemd retries: the other one may be on its way out
        assert failed["path"] == str(first.socket)
        assert f"pid {first.proc.pid}" in failed["holder"]
        assert "grpc_socket" in failed["action"]
        assert os.stat(first.socket).st_ino == inode
        assert health_over(f"unix:{first.socket}") == health_pb2.HealthCheckResponse.SERVING
        # kill -9 leaves a stale socket: the next agent replaces it.
        first.proc.kill()
        first.proc.wait(10)
    assert first.socket.exists()
    with AgentProcess(tmp_path / "c", "--grpc-socket", str(first.socket), config=FAST) as third:
        third.wait_ready()
        assert health_over(f"unix:{first.socket}") == health_pb2.HealthCheckResponse.SERVING


def test_a_second_agent_on_the_same_state_directory_refuses(tmp_path):
    """One audit chain and one journal have one writer: the state directory
    is locked for the agent's life."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with AgentProcess(tmp_path / "a", config=FAST) as first:
        first.wait_ready()
        second = AgentProcess(tmp_path / "b", "--state-dir", str(first.state), config=FAST)
        try:
            rc, failed = failed_start(second)
        finally:
            second.stop()
        assert rc == 1 and failed["path"] == str(first.state)
        assert failed["holder"] == f"pid {first.proc.pid}"
        assert health_over(f"unix:{first.socket}") == health_pb2.HealthCheckResponse.SERVING
    # A clean stop releases it.
    with AgentProcess(tmp_path / "b", "--state-dir", str(first.state), config=FAST) as again:
        again.wait_ready()


# -- item 5: unclean failures at start ----------------------------------------

def test_grpc_port_in_use_names_the_address(tmp_path):
    with held_port() as other:
        address = f"127.0.0.1:{other.getsockname()[1]}"
        agent = AgentProcess(tmp_path, "--grpc-listen", address, config=FAST)
        try:
            rc, failed = failed_start(agent)
        finally:
            agent.stop()
    assert rc == 1
    assert failed["address"] == address and "in use" in failed["error"]
    assert "server.grpc_listen" in failed["action"]
    assert not agent.socket.exists()


def test_metrics_port_in_use_names_the_address(tmp_path):
    with held_port() as other:
        address = f"127.0.0.1:{other.getsockname()[1]}"
        agent = AgentProcess(tmp_path, "--metrics-listen", address, config=FAST)
        try:
            rc, failed = failed_start(agent)
        finally:
            agent.stop()
    assert rc == 1
    assert failed["address"] == address and "in use" in failed["error"]
    assert "server.metrics_listen" in failed["action"]
    assert not agent.socket.exists()  # what had started was stopped


def test_state_dir_that_is_a_file(tmp_path):
    (tmp_path / "state").write_text("not a directory")
    agent = AgentProcess(tmp_path, config=FAST)
    try:
        rc, failed = failed_start(agent)
    finally:
        agent.stop()
    assert rc == 2
    assert failed["path"] == str(tmp_path / "state") and "not a directory" in failed["error"]
    assert "state_dir" in failed["action"]


def test_corrupt_journal_is_moved_aside_and_the_agent_starts(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    garbage = os.urandom(8192)
    (state / "operations.db").write_bytes(garbage)
    (state / "operations.db-wal").write_bytes(b"\x00" * 100)
    with AgentProcess(tmp_path, config=FAST) as agent:
        agent.wait_ready()
        assert "Traceback" not in "\n".join(agent.lines)
        [reset] = agent.events("operations.journal_corrupt")
        assert reset["level"] == "error" and reset["path"] == str(state / "operations.db")
        moved = Path(reset["moved_to"])
        assert moved.parent == state and moved.name.startswith("operations.db.corrupt-")
        assert moved.read_bytes() == garbage
        assert Path(f"{moved}-wal").read_bytes() == b"\x00" * 100  # the WAL went with it
        assert "request_id" in reset["action"]  # says what is lost
        with sqlite3.connect(state / "operations.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with grpc.insecure_channel(f"unix:{agent.socket}") as ch:
            stream = telemetry_pb2_grpc.TelemetryStub(ch).WatchEvents(
                telemetry_pb2.WatchEventsRequest(kinds=["operations.journal_reset"], since_sequence=1),
                timeout=5)
            event = next(stream)
            stream.cancel()
        assert moved.name in event.message


def test_unit_does_not_restart_on_exit_code_2():
    unit = (ROOT / "systemd/hostagent.service").read_text().splitlines()
    assert "RestartPreventExitStatus=2" in unit
    assert "Restart=on-failure" in unit


# -- item 6: SIGHUP validates [tls] as a start does ---------------------------

def tls_config(files: dict[str, Path]) -> str:
    return (FAST + f'[tls]\ncert_file = "{files["cert"]}"\nkey_file = "{files["key"]}"\n'
            f'client_ca_file = "{files["ca"]}"\n')


def install_tls(pki, directory: Path) -> dict[str, Path]:
    directory.mkdir()
    files = {"cert": directory / "server.crt", "key": directory / "server.key",
             "ca": directory / "ca.crt"}
    shutil.copy(pki.server.cert, files["cert"])
    shutil.copy(pki.server.key, files["key"])
    os.chmod(files["key"], 0o600)
    files["ca"].write_bytes(pki.ca.pem)
    return files


def handshake(agent: AgentProcess, pki) -> None:
    creds = grpc.ssl_channel_credentials(pki.ca.pem, private_key=pki.viewer.key.read_bytes(),
                                         certificate_chain=pki.viewer.cert.read_bytes())
    with grpc.secure_channel(agent.grpc_address, creds,
                             options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        grpc.channel_ready_future(ch).result(timeout=5)


def test_sighup_refuses_a_tls_section_the_next_start_would_refuse(tmp_path):
    pki = make_pki(tmp_path)
    good = install_tls(pki, tmp_path / "live")
    with AgentProcess(tmp_path, config=tls_config(good)) as agent:
        agent.wait_ready()
        handshake(agent, pki)
        open_mode = tmp_path / "open.key"
        shutil.copy(good["key"], open_mode)
        os.chmod(open_mode, 0o644)
        bad = [({**good, "key": tmp_path / "missing.key"}, "no such file"),
               ({**good, "key": pki.viewer.key}, "does not match"),
               ({**good, "key": open_mode}, "readable by group or others")]
        for files, reason in bad:
            start = len(agent.lines)
            agent.config.write_text(tls_config(files))
            agent.signal(signal.SIGHUP)
            failed = agent.wait_event("config.reload_failed", start=start)
            assert failed["file"] == str(files["key"]) and reason in failed["error"]
            assert "keeping the running config" in failed["action"]
            assert not [f for f in agent.events("config.reloaded")]
            handshake(agent, pki)  # still serving with the old files
        # A valid [tls] naming other files: applies at the next start, said so.
        start = len(agent.lines)
        moved = install_tls(pki, tmp_path / "rotated")
        agent.config.write_text(tls_config(moved))
        agent.signal(signal.SIGHUP)
        agent.wait_event("config.reloaded", start=start)
        required = [f for f in agent.events("config.restart_required") if "[tls]" in f["reason"]]
        assert len(required) == 1
        handshake(agent, pki)
    # The same bad config at a start: refused too, naming the same file.
    agent.config.write_text(tls_config(bad[1][0]))
    again = AgentProcess(tmp_path, config=agent.config.read_text())
    assert again.proc.wait(30) == 2
    again.stop()
    assert str(pki.viewer.key) in "\n".join(again.lines)


# -- item 8: journal and audit agree after a kill -9 --------------------------

def op(name: str, request_id: str, state: S, created: float, **kw) -> Operation:
    return Operation(name=name, kind="test.touch", request_id=request_id, resource="thing/1",
                     state=state, args_hash=args_hash({}), identity="spiffe://test/operator",
                     create_time=created, **kw)


def audit_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_operation_that_never_ran_says_so_and_gets_an_audit_record(tmp_path, caplog):
    caplog.set_level("INFO")
    journal = Journal(str(tmp_path / "operations.db"))
    audit = AuditLog(str(tmp_path / "audit.jsonl"))
    now = time.time()
    # Audited, then running at the kill.
    audit.record(decision="allow", status="OK", identity="spiffe://test/operator",
                 method="/test/Touch", request_id="ran")
    journal.insert(op("operations/ran", "ran", S.RUNNING, now - 5, start_time=now - 4))
    # Journaled, never audited, never started: the kill landed in between.
    journal.insert(op("operations/never", "never", S.PENDING, now - 0.1))
    # Journaled and finished in that same gap (a fast operation).
    journal.insert(op("operations/fast", "fast", S.SUCCEEDED, now - 0.05, start_time=now - 0.05,
                      end_time=now - 0.04))
    kinds = {"test.touch": OperationKind("test.touch", run=lambda ctx, a: None,
                                         resource=lambda a: "thing/1")}
    before = unfinished(journal)
    manager = OperationManager(journal, kinds)
    try:
        assert manager.recover() == []
        never = manager.get("operations/never")
        assert (never.state, never.error_code) == (S.FAILED, 10)
        assert never.error_message == NOT_STARTED
        assert NOT_STARTED == "agent restarted before the operation started; it did not run"
        assert manager.get("operations/ran").error_message == INTERRUPTED
        assert reconcile(before, journal, audit) == 3
    finally:
        manager.close()
    records = {r["request_id"]: r for r in audit_records(tmp_path / "audit.jsonl")[1:]}
    assert set(records) == {"ran", "never", "fast"}
    assert records["never"]["status"] == "ABORTED" and records["never"]["decision"] == "allow"
    assert records["never"]["message"] == f"recovered at start: {NOT_STARTED}"
    assert records["never"]["identity"] == "spiffe://test/operator"
    assert records["ran"]["message"] == f"recovered at start: {INTERRUPTED}"
    assert records["fast"]["status"] == "OK" and "SUCCEEDED" in records["fast"]["message"]
    recovered = [r for r in caplog.records if r.getMessage() == "operation.recovered"]
    assert len(recovered) == 3
    # The next start finds nothing left to reconcile.
    assert reconcile(unfinished(journal), journal, audit) == 0
    assert audit.verify().ok
    audit.close()
    journal.close()


def test_agent_start_reconciles_a_journal_row_without_an_audit_record(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    journal = Journal(str(state / "operations.db"))
    journal.insert(op("operations/never", "never-1", S.PENDING, time.time()))
    journal.close()
    with AgentProcess(tmp_path, config=FAST) as agent:
        agent.wait_ready()
        [recovered] = agent.events("operation.recovered")
        assert recovered["request_id"] == "never-1" and recovered["message"] == NOT_STARTED
    [record] = audit_records(state / "audit.jsonl")
    assert (record["request_id"], record["status"]) == ("never-1", "ABORTED")
    assert record["message"] == f"recovered at start: {NOT_STARTED}"


def test_damaged_pages_behind_a_good_header_are_found_at_open(tmp_path):
    from agent.operations.journal import JournalCorrupt, move_aside
    path = str(tmp_path / "operations.db")
    journal = Journal(path)
    for i in range(200):
        journal.insert(op(f"operations/{i}", f"r{i}", S.SUCCEEDED, 1.0, message="m" * 200))
    journal.close()
    with open(path, "r+b") as f:  # a tree page in the middle, header intact
        f.seek(4096 * 10 + 100)
        f.write(b"\xff" * 3000)
    with pytest.raises(JournalCorrupt):
        Journal(path)
    moved = move_aside(path, clock=lambda: 1796285700.0)
    assert moved == f"{path}.corrupt-20261203T081500Z" and not os.path.exists(path)
    fresh = Journal(path)
    assert fresh.list() == [] and fresh.integrity_check() == "ok"
    fresh.close()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) not installed")
def test_sampling_without_packet_sockets_refuses_naming_the_dropin(tmp_path, netns):
    """What an operator sees who turns [sampling] on under the shipped unit
    (no CAP_NET_RAW): one start_failed line that names the interfaces and
    the drop-in to install, not a running agent without flows."""
    config = f'[sampling]\ninterfaces = ["lo"]\nnamespace = "{netns}"\n'
    agent = AgentProcess(tmp_path, config=config, wrap=("setpriv", "--bounding-set", "-net_raw"))
    try:
        rc, failed = failed_start(agent)
    finally:
        agent.stop()
    text = " ".join(failed.values())
    assert "[sampling] cannot sample lo" in text and "systemd/sampling.conf" in text, failed
    assert rc == 2  # a missing capability does not clear by itself: systemd must not retry
