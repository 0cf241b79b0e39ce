"""The audit trail: the hash chain verifies, and each kind of tampering (an
edited byte, a deleted line, swapped lines, a cut last line) is reported at
the right line, every region of it, not only the first; secrets never reach
the file or the log; a reopened log continues the chain, sealing a line cut
by a crash.  Issue 9: a record is bounded, denials are rate-limited and
counted, a failed write leaves no partial line."""
import errno
import hashlib
import json
import logging
import os
import re
import stat
import subprocess
import sys
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
    # The cut line is kept as evidence and sealed; the chain goes on after the seal.
    assert len(ls) == 7 and all(line.endswith(b"\n") for line in ls)
    seal = json.loads(ls[5])
    assert (seal["event"], seal["seq"], seal["damaged_bytes"]) == ("seal", 5, len(ls[4]))
    assert seal["prev"] == hashlib.sha256(ls[3]).hexdigest()
    assert json.loads(ls[-1])["seq"] == 6
    result = verify(str(path))
    assert (result.ok, result.first_bad_line) == (False, 5)  # the damage stays evident
    assert [(r.first_line, r.last_line, r.sealed) for r in result.regions] == [(5, 5, True)]


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


# -- issue 9 item 2: bounded records, rate-limited denials, no torn lines -----

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def deny(log, identity="insecure", peer="ipv4:127.0.0.1:5000", **kw):
    return log.record(identity=identity, peer=peer, method="/x.Y/Z", decision="deny",
                      status="PERMISSION_DENIED", **kw)


def test_one_record_is_bounded_marked_and_hashed(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    args = {"name": "n" * 900_000, "password": "hunter2" * 1000, "many": {f"k{i}": i for i in range(500)},
            "list": list(range(10_000)), "deep": [[[[[[[[[["bottom"]]]]]]]]]]}
    rec = log.record(identity="cert:" + "i" * 5000, peer="ipv4:127.0.0.1:1", method="/x.Y/" + "m" * 5000,
                     request_id="r" * 5000, args=args, decision="allow", status="OK",
                     message="why " * 5000)
    log.close()
    [line] = lines(p)
    assert len(line) <= 4096
    written = json.loads(line)
    assert written == {k: v for k, v in rec.items()}
    assert written["truncated"] == ["identity", "method", "request_id", "args", "message"]
    assert written["identity"].startswith("cert:iii") and len(written["identity"]) < 300
    assert "5005 chars" in written["identity"]  # says how long it was
    assert "hunter2" not in line.decode()
    canonical = json.dumps(redact(args), sort_keys=True, separators=(",", ":"))
    assert written["args_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert verify(str(p)).ok


def test_small_args_are_kept_whole(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    args = {"name": "a" * 256, "items": list(range(32)), "nested": {"k": {"k": {"k": 1}}}}
    rec = log.record(decision="allow", status="OK", args=args)
    log.close()
    assert rec["args"] == args and "truncated" not in rec and "args_sha256" not in rec


def test_denials_are_rate_limited_per_identity_and_allowed_calls_never(tmp_path):
    p = tmp_path / "audit.jsonl"
    clock = Clock()
    log = AuditLog(str(p), monotonic=clock)
    written = [deny(log, request_id=f"a{i}") for i in range(50)]
    assert sum(r is not None for r in written) == 20  # the burst
    assert all(deny(log, identity="cert:other", request_id=f"b{i}") for i in range(5))
    for i in range(100):  # the same identity, allowed: always recorded
        assert log.record(identity="insecure", decision="allow", status="OK", request_id=f"ok{i}")
    assert log.suppressed_total == 30
    clock.now += 1.0  # one token back
    rec = deny(log, request_id="later")
    assert rec["suppressed"] == 30
    assert deny(log, request_id="again") is None  # and spent
    log.close()
    recs = [json.loads(line) for line in lines(p)]
    assert len([r for r in recs if r.get("decision") == "deny" and r["identity"] == "insecure"]) == 21
    assert len([r for r in recs if r.get("decision") == "allow"]) == 100
    # The one suppressed since is counted in a summary at close.
    [summary] = [r for r in recs if r.get("event") == "suppressed"]
    assert (summary["denials"], summary["keys"]) == (1, {"insecure": 1})
    assert verify(str(p)).ok


def test_unauthenticated_callers_share_a_bucket_per_host(tmp_path):
    log = AuditLog(str(tmp_path / "audit.jsonl"), monotonic=Clock())
    same_host = [deny(log, identity="", peer=f"ipv4:10.0.0.1:{port}") for port in range(1000, 1030)]
    assert sum(r is not None for r in same_host) == 20
    assert deny(log, identity="", peer="ipv4:10.0.0.2:1000") is not None
    log.close()


def test_the_limiter_stays_bounded_and_loses_no_count(tmp_path):
    p = tmp_path / "audit.jsonl"
    clock = Clock()
    log = AuditLog(str(p), monotonic=clock, limiter_keys=8)
    for who in range(40):  # 40 identities, 25 denials each: 5 suppressed each
        clock.now += 10  # (not so fast that all identities together are limited)
        for _ in range(25):
            deny(log, identity=f"cert:u{who}")
    assert log.suppressed_total == 200
    assert len(log._limiter) <= 8
    log.close()
    recs = [json.loads(line) for line in lines(p)]
    counted = sum(r.get("suppressed", 0) for r in recs) + sum(
        r["denials"] for r in recs if r.get("event") == "suppressed")
    assert counted == 200
    assert all(len(line) <= 4096 for line in lines(p))


def test_a_write_that_fails_part_way_leaves_no_partial_line(tmp_path, caplog):
    p = tmp_path / "audit.jsonl"
    clock = Clock()
    log = AuditLog(str(p), monotonic=clock)
    write(log, 3)
    before = p.read_bytes()

    def half_then_full(fd, data):
        if len(data) > 10:
            os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    log._os_write = half_then_full
    with caplog.at_level(logging.ERROR, logger="agent.audit"):
        log.record(decision="allow", status="OK", request_id="lost")
    assert p.read_bytes() == before  # rolled back to the last whole line
    assert not log.healthy and log.errors == 1  # (the probe failed too)
    assert any(r.getMessage() == "audit.write_failed" for r in caplog.records)
    assert p.read_bytes() == before
    log._os_write = os.write  # space back
    assert not log.healthy  # not probed again so soon
    clock.now += 1.0
    assert log.healthy
    write(log, 1, start=3)
    log.close()
    recs = [json.loads(line) for line in lines(p)]
    # A record says that one is missing before it.
    assert (recs[3]["event"], recs[3]["lost"]) == ("resumed", 1)
    result = verify(str(p))
    assert (result.ok, result.records) == (True, 5)


def test_verify_reports_every_bad_region(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    write(log, 12)
    log.close()
    ls = lines(p)
    ls[2] = ls[2].replace(b"user2", b"user9")  # edited
    del ls[6]  # seq 7 deleted
    ls[9] = b"garbage\n"  # seq 11 overwritten
    rewrite(p, ls)
    result = verify(str(p))
    assert not result.ok
    assert [(r.first_line, r.last_line) for r in result.regions] == [(3, 3), (7, 7), (10, 10)]
    assert "modified" in result.regions[0].reason and "deleted" in result.regions[1].reason
    assert (result.first_bad_line, result.records, result.verified) == (3, 2, 8)


def test_verify_resumes_after_a_sealed_crash_and_finds_a_later_edit(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    write(log, 5)
    log.close()
    p.write_bytes(p.read_bytes()[:-30])  # a crash in the middle of a write
    log = AuditLog(str(p))  # seals the cut line
    write(log, 5, start=5)
    log.close()
    assert verify(str(p)).regions[0].sealed
    ls = lines(p)
    ls[8] = ls[8].replace(b"user7", b"user0")
    rewrite(p, ls)
    result = verify(str(p))
    assert [(r.first_line, r.sealed) for r in result.regions] == [(5, True), (9, False)]
    cli = subprocess.run([sys.executable, "-m", "agent", "audit", "verify", str(p)],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 1
    out = cli.stderr.splitlines()
    assert any("DAMAGED at line 5" in line and "sealed" in line for line in out)
    assert any("TAMPERED at line 9" in line for line in out)


def test_a_cut_line_is_sealed_once(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p))
    write(log, 2)
    log.close()
    p.write_bytes(p.read_bytes()[:-5])
    AuditLog(str(p)).close()
    AuditLog(str(p)).close()  # the second start finds a sealed tail: nothing to do
    events = [json.loads(line).get("event") for line in lines(p)[2:]]
    assert events == ["seal"]
    assert [r.sealed for r in verify(str(p)).regions] == [True]


def test_low_disk_stops_denials_but_not_allowed_calls(tmp_path):
    p = tmp_path / "audit.jsonl"
    log = AuditLog(str(p), deny_floor_bytes=1 << 62)  # "less than that is free"
    assert deny(log) is None and log.suppressed_total == 1
    assert log.healthy  # refused callers cannot lock anyone out this way
    assert log.record(identity="unix:uid:0", decision="allow", status="OK", request_id="r")
    log.close()
    assert [json.loads(line)["request_id"] for line in lines(p)] == ["r"]


def test_a_cut_line_left_unsealed_by_an_older_writer_hides_nothing_after_it(path):
    # Older writers ended a cut line with a newline and went on, counting it as a record.
    ls = lines(path)[:3] + [b'{"time":"2026-11-24T14:00\n']
    for seq in (5, 6, 7):
        rec = {"time": "2026-11-24T14:00:01.000Z", "seq": seq, "identity": f"u{seq}",
               "prev": hashlib.sha256(ls[-1]).hexdigest()}
        ls.append((json.dumps(rec, separators=(",", ":")) + "\n").encode())
    rewrite(path, ls)
    assert [(r.first_line, r.last_line) for r in verify(str(path)).regions] == [(4, 4)]
    ls[5] = ls[5].replace(b'"u6"', b'"u0"')  # an edit after it is still found
    rewrite(path, ls)
    assert [r.first_line for r in verify(str(path)).regions] == [4, 6]
