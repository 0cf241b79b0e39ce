"""The audit trail: the hash chain verifies, and each kind of tampering (an
edited byte, a deleted line, swapped lines, a cut last line) is reported at
the right line; secrets never reach the file or the log; a reopened log
continues the chain."""
import hashlib
import json
import logging
import os
import re
import stat
import threading

import pytest

from agent.audit import GENESIS, AuditLog, redact, rfc3339, verify


def write(log, n, start=0):
    for i in range(start, start + n):
        log.record(identity=f"user{i}", peer="ipv4:127.0.0.1:5000", method="/x.Y/Z",
                   request_id=f"req-{i}", args={"n": i}, decision="allow", status="OK",
                   duration_ms=1.5)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    write(log, 5)
    log.close()
    return p


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def test_chain_verifies_and_records_are_complete(path):
    result = verify(str(path))
    assert (result.ok, result.records, result.first_bad_line) == (True, 5, None)
    recs = [json.loads(line) for line in lines(path)]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0]["prev"] == GENESIS
    assert list(recs[0]) == ["time", "seq", "identity", "peer", "method", "request_id", "args",
                             "decision", "status", "duration_ms", "message", "prev"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", recs[0]["time"])
    assert recs[2]["identity"] == "user2" and recs[2]["request_id"] == "req-2"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_empty_file_verifies(tmp_path):
    AuditLog(str(tmp_path / "a.jsonl")).close()
    result = verify(str(tmp_path / "a.jsonl"))
    assert (result.ok, result.records) == (True, 0)


def test_rfc3339():
    assert rfc3339(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"
    assert rfc3339(1_700_000_000.9996) == "2023-11-14T22:13:21.000Z"


def rewrite(path, new_lines):
    path.write_bytes(b"".join(new_lines))


def test_edited_byte_in_a_middle_line(path):
    ls = lines(path)
    ls[2] = ls[2].replace(b"user2", b"user9")  # still valid JSON, seq intact
    rewrite(path, ls)
    result = verify(str(path))
    assert (result.ok, result.first_bad_line, result.records) == (False, 3, 2)
    assert "modified" in result.reason


def test_edited_prev_of_a_middle_line(path):
    ls = lines(path)
    rec = json.loads(ls[2])
    rec["prev"] = "f" * 64
    ls[2] = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    rewrite(path, ls)
    assert verify(str(path)).first_bad_line == 3


def test_garbled_middle_line(path):
    ls = lines(path)
    ls[1] = ls[1][:10] + b"#" + ls[1][11:]
    rewrite(path, ls)
    result = verify(str(path))
    assert (result.ok, result.first_bad_line) == (False, 2)


@pytest.mark.parametrize("index", [0, 2])
def test_deleted_line(path, index):
    ls = lines(path)
    del ls[index]
    rewrite(path, ls)
    result = verify(str(path))
    assert (result.ok, result.first_bad_line) == (False, index + 1)
    assert "deleted" in result.reason


def test_swapped_lines(path):
    ls = lines(path)
    ls[1], ls[2] = ls[2], ls[1]
    rewrite(path, ls)
    result = verify(str(path))
    assert (result.ok, result.first_bad_line) == (False, 2)


def test_truncated_last_line(path):
    path.write_bytes(path.read_bytes()[:-20])
    result = verify(str(path))
    assert (result.ok, result.first_bad_line, result.records) == (False, 5, 4)
    assert "truncated" in result.reason


def test_edited_last_line_needs_the_writers_hash(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    write(log, 3)
    assert log.verify().ok
    ls = lines(p)
    ls[2] = ls[2].replace(b"user2", b"user9")
    rewrite(p, ls)
    assert verify(str(p)).ok  # no successor covers it...
    result = log.verify()  # ...but the writer's memory does
    assert (result.ok, result.first_bad_line) == (False, 3)
    assert verify(str(p), last_hash=log.last_hash).first_bad_line == 3
    log.close()


def test_reopen_continues_the_chain(path):
    log = AuditLog(str(path))
    assert log.last_hash == hashlib.sha256(lines(path)[-1]).hexdigest()
    write(log, 2, start=5)
    log.close()
    result = verify(str(path))
    assert (result.ok, result.records) == (True, 7)
    assert [json.loads(line)["seq"] for line in lines(path)] == list(range(1, 8))


def test_reopen_after_a_cut_last_line(path):
    path.write_bytes(path.read_bytes()[:-20])  # a crash in the middle of a write
    log = AuditLog(str(path))
    write(log, 1, start=5)
    log.close()
    ls = lines(path)
    assert len(ls) == 6 and all(line.endswith(b"\n") for line in ls)
    assert json.loads(ls[-1])["seq"] == 6
    result = verify(str(path))
    assert (result.ok, result.first_bad_line) == (False, 5)  # the damage stays evident


def test_concurrent_writers_keep_one_chain(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    threads = [threading.Thread(target=write, args=(log, 50, i * 50)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    result = verify(str(p))
    assert (result.ok, result.records) == (True, 200)
    assert sorted(json.loads(line)["identity"] for line in lines(p)) == sorted(
        f"user{i}" for i in range(200))


SECRETS = {"name": "n1", "password": "hunter2", "BMC_Passwd": "p",
           "nested": {"apiKey": "k1", "list": [{"Token": "t1"}, {"ok": 1, "client_secret": "s"}],
                      "Credentials": {"user": "u"}},
           "keys": ["a", "b"]}


def test_redact_is_recursive_and_case_insensitive():
    assert redact(SECRETS) == {
        "name": "n1", "password": "***", "BMC_Passwd": "***",
        "nested": {"apiKey": "***", "list": [{"Token": "***"}, {"ok": 1, "client_secret": "***"}],
                   "Credentials": "***"},
        "keys": "***"}
    assert SECRETS["password"] == "hunter2"  # a copy


def test_secrets_reach_neither_the_file_nor_the_log(tmp_path, caplog):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    with caplog.at_level(logging.INFO, logger="agent.audit"):
        rec = log.record(identity="uid:0", method="/x.Y/Z", args=SECRETS, decision="deny",
                         status="PERMISSION_DENIED", message="no")
    log.close()
    text = p.read_text()
    for secret in ("hunter2", "k1", "t1", '"s"', '"u"', '"p"'):
        assert secret not in text
    assert json.loads(text)["args"] == redact(SECRETS) == rec["args"]
    [event] = [r for r in caplog.records if r.getMessage() == "audit"]
    fields = event.hostagent_fields
    assert json.loads(fields["args"]) == redact(SECRETS)
    assert (fields["decision"], fields["status"], fields["seq"]) == ("deny", "PERMISSION_DENIED", 1)
    assert "hunter2" not in repr(fields)


def test_bad_decision_is_refused(tmp_path):
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    with pytest.raises(ValueError):
        log.record(decision="maybe", status="OK")
    log.close()
