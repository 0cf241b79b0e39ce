"""Issue 9 item 2: the audit trail as a way to fill the disk.  Against the real
agent: a flood of large denied calls from a plaintext loopback caller stays
small on disk and is accounted for; a full disk neither locks root out at
once nor leaves a half-written line, and the trail recovers with the space."""
import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from agent.api.server import MAX_RECEIVE_BYTES
from agent.gen.hostagent.v1 import operations_pb2, operations_pb2_grpc
from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration
BIG = MAX_RECEIVE_BYTES - 1024  # as large as a request may be
MISSING = "operations/00000000-0000-4000-8000-000000000000"


def cancel(channel, name, request_id=""):
    try:
        operations_pb2_grpc.OperationsStub(channel).CancelOperation(
            operations_pb2.CancelOperationRequest(name=name, request_id=request_id), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def audit_verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "audit", "verify", str(path)],
                          capture_output=True, text=True, timeout=30)


def test_a_flood_of_large_denials_stays_small_and_is_accounted_for(tmp_path):
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        names = [f"operations/{i:04d}-" + "x" * BIG for i in range(300)]
        t0 = time.monotonic()
        with grpc.insecure_channel(agent.grpc_address, options=[
                ("grpc.max_send_message_length", 2 << 20)]) as ch, ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda n: cancel(ch, n), names))
            flood_s = time.monotonic() - t0
            assert set(codes) == {grpc.StatusCode.PERMISSION_DENIED}
            time.sleep(1.1)  # one token back: the next denial is written, with the count
            assert cancel(ch, MISSING, "after-flood") is grpc.StatusCode.PERMISSION_DENIED
        # Root over the unix socket is never rate-limited: its calls are always recorded.
        with grpc.insecure_channel(f"unix:{agent.socket}") as ch:
            for i in range(30):
                assert cancel(ch, MISSING, f"root-{i}") is grpc.StatusCode.NOT_FOUND
        # Operators see it without reading the file (the next collection).
        deadline = time.monotonic() + 15
        while True:
            metrics = urllib.request.urlopen(agent.metrics_url, timeout=5).read().decode()
            found = re.search(r"^hostagent_audit_denials_suppressed_total (\S+)$", metrics, re.M)
            if (found and float(found.group(1)) >= 270) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert found and float(found.group(1)) >= 270
        assert re.search(r"^hostagent_audit_healthy 1(\.0)?$", metrics, re.M)
        assert agent.stop() == 0
        # The journal is spared too: a denial is logged when it is recorded.
        logged = [e for e in agent.events("rpc.denied") if e.get("identity") == "insecure"]
    path = agent.state / "audit.jsonl"
    size = path.stat().st_size
    # Cap: (burst 20 + one per second of flood + the one after) records of at
    # most 4 KiB, plus root's 30 small ones.  Before: 300 x the request size
    # (300 x 900 kB = 270 MB in 28 s with 1 MiB requests).
    assert size < (22 + flood_s) * 4096 + 30 * 1024, size
    assert all(len(line) <= 4096 for line in path.read_bytes().splitlines(keepends=True))
    recs = records(path)
    denied = [r for r in recs if r.get("decision") == "deny" and r["identity"] == "insecure"]
    assert 20 <= len(denied) <= 22 + flood_s
    assert len(logged) == len(denied)
    big = denied[0]
    assert "args" in big["truncated"] and len(big["args"]["name"]) < 1024
    full = next(n for n in names if n.startswith(big["args"]["name"][:16]))
    canonical = json.dumps({"name": full}, sort_keys=True, separators=(",", ":"))
    assert big["args_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    last = [r for r in denied if r["request_id"] == "after-flood"]
    assert last and last[0]["suppressed"] > 0
    # Every one of the 301 denials is either a record or counted in one.
    summaries = [r for r in recs if r.get("event") == "suppressed"]
    counted = sum(r.get("suppressed", 0) for r in denied) + sum(
        s["keys"].get("insecure", 0) for s in summaries)
    assert len(denied) + counted == 301
    assert sorted(r["request_id"] for r in recs if r.get("identity", "").startswith("unix:")) == sorted(
        f"root-{i}" for i in range(30))
    result = audit_verify(path)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def small_state(tmp_path):
    """The agent's state directory on its own 16 MiB tmpfs, to fill for real."""
    state = tmp_path / "state"
    state.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(state)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write to ``name`` until the filesystem is full."""
    path = directory / name
    chunk = b"\0" * 65536
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
        for size in (4096, 512, 1):  # the last partial pages too
            try:
                while True:
                    f.write(chunk[:size])
            except OSError:
                pass
    return path


def test_full_disk_denials_cannot_lock_root_out_and_no_line_is_torn(tmp_path, small_state):
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        path = small_state / "audit.jsonl"
        assert (small_state / "audit.jsonl.reserve").stat().st_size >= 1 << 20
        filler = fill(small_state)
        before = path.stat().st_size
        with grpc.insecure_channel(agent.grpc_address) as ch:
            for i in range(50):
                assert cancel(ch, MISSING, f"deny-{i}") is grpc.StatusCode.PERMISSION_DENIED
        assert path.stat().st_size == before  # no room for denials: counted, not written
        with grpc.insecure_channel(f"unix:{agent.socket}") as root:
            # The disk is full, yet root's changes go ahead, recorded in the
            # reserve (20 records: more than the last page's slack).
            for i in range(20):
                assert cancel(root, MISSING, f"root-{i}") is grpc.StatusCode.NOT_FOUND
            assert agent.events("audit.reserve_released")
            assert [r.get("request_id") for r in records(path)][-1] == "root-19"
            fill(small_state, "filler2")  # whatever else runs takes the reserve's space
            codes = [cancel(root, MISSING, f"root-{i}") for i in range(20, 200)]
            # Fail closed once a record cannot be written...
            assert grpc.StatusCode.UNAVAILABLE in codes
            assert agent.events("audit.write_failed")
            # (The write that found the disk full was, in practice, cut part-way:
            # "audit.rolled_back" in the agent log; tmpfs pages make that likely.)
            data = path.read_bytes()
            assert data.endswith(b"\n")  # ...and nothing half-written stays behind
            assert audit_verify(path).returncode == 0
            # Space back: the trail recovers by itself, and root with it.
            filler.unlink()
            (small_state / "filler2").unlink()
            deadline = time.monotonic() + 5  # `healthy` tries again once a second
            while (code := cancel(root, MISSING, "root-back")) is grpc.StatusCode.UNAVAILABLE:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert code is grpc.StatusCode.NOT_FOUND
            assert [r.get("request_id") for r in records(path)][-1] == "root-back"
        assert agent.stop() == 0
    result = audit_verify(path)
    assert result.returncode == 0, result.stderr + result.stdout
