"""The strict text-format parser and the textfile collector: good files are
served, each bad one is left out whole with node_textfile_scrape_error 1."""
from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.textfile import MAX_FILE_BYTES, TextfileCollector
from agent.exposition_parser import ParseError, parse_text
from agent.telemetry.collector import CollectorContext
from agent.telemetry.model import Batch, MetricType
from tests.helpers import batch_families, batch_raw, batch_values

TREE = Path(__file__).parent / "fixtures" / "hosts" / "vm-storage"
TEXTFILES = "/var/lib/node_exporter/textfile_collector"


# -- parser ------------------------------------------------------------------------
def test_parse_families_help_type_labels_and_values():
    text = ('# HELP disk_temp_celsius Drive temperature, \\\\ and \\n escaped.\n'
            '# TYPE disk_temp_celsius gauge\n'
            'disk_temp_celsius{disk="sda",model="a \\"b\\" \\\\ c\\nd"} 34\n'
            'disk_temp_celsius { disk = "sdb" , } -1.5e1\n'
            '\n'
            '   # just a comment\n'
            'jobs_total 7 1700000000000\n'
            'weird NaN\n'
            'weird2{x="1"} +Inf\n'
            'weird3 -inf')
    fams = parse_text(text)
    assert [(f.name, f.type, f.typed) for f in fams] == [
        ("disk_temp_celsius", "gauge", True), ("jobs_total", "untyped", False),
        ("weird", "untyped", False), ("weird2", "untyped", False), ("weird3", "untyped", False)]
    temp = fams[0]
    assert temp.help == "Drive temperature, \\ and \n escaped."
    assert temp.samples[0].labels == (("disk", "sda"), ("model", 'a "b" \\ c\nd'))
    assert temp.samples[1].labels == (("disk", "sdb"),) and temp.samples[1].value == -15.0
    assert fams[1].samples[0].timestamp_ms == 1700000000000 and fams[1].samples[0].line == 7
    assert math.isnan(fams[2].samples[0].value)
    assert fams[3].samples[0].value == math.inf and fams[4].samples[0].value == -math.inf


def test_parse_histogram_parts_join_their_family_and_groups_may_interleave():
    fams = parse_text('# TYPE rpc_seconds histogram\nrpc_seconds_bucket{le="1"} 1\n'
                      'other 1\nrpc_seconds_sum 0.5\nrpc_seconds_count 1\nother{a="b"} 2\n')
    assert [(f.name, len(f.samples)) for f in fams] == [("rpc_seconds", 3), ("other", 2)]
    assert [s.name for s in fams[0].samples] == ["rpc_seconds_bucket", "rpc_seconds_sum", "rpc_seconds_count"]


@pytest.mark.parametrize("text, message", [
    ("foo 1\r\n", "carriage return"),
    ("foo one\n", "invalid value"),
    ("foo 1_000\n", "invalid value"),
    ("foo 0x10\n", "invalid value"),
    ("foo 1 2 3\n", "expected"),
    ("foo\n", "expected"),
    ("foo 1 1.5\n", "invalid timestamp"),
    ("foo 1 99999999999999999999\n", "invalid timestamp"),
    ("1foo 1\n", "invalid metric name"),
    ("foo-bar 1\n", "expected"),
    ('foo{a="1",a="2"} 1\n', "given twice"),
    ('foo{__x="1"} 1\n', "reserved"),
    ('foo{1a="1"} 1\n', "invalid label name"),
    ('foo{a=1} 1\n', "quoted value"),
    ('foo{a="\\t"} 1\n', "invalid escape"),
    ('foo{a="1" b="2"} 1\n', "expected , or }"),
    ('foo{a="1"\n', "expected , or }"),
    ("# TYPE foo gauge\n# TYPE foo gauge\n", "second TYPE"),
    ("# TYPE foo meter\n", "unknown type"),
    ("# TYPE foo gauge extra\n", "unknown type"),
    ("foo 1\n# TYPE foo gauge\n", "after its samples"),
    ("# HELP foo a\n# HELP foo b\n", "second HELP"),
    ("# HELP foo bad \\t escape\n", "invalid escape"),
    ("# HELP 9foo x\n", "invalid metric name"),
])
def test_parse_rejects(text, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_text(text)
    assert err.value.line >= 1


# -- collector ---------------------------------------------------------------------
class Events(list):
    def __call__(self, kind, severity, source, message, **labels):
        self.append((kind, message, labels))


def make(root, directory=TEXTFILES, served=None, events=None):
    ctx = CollectorContext(hostfs=HostFS(root), options={"directory": directory} if directory else {},
                           publish=events if events is not None else (lambda *a, **k: None),
                           served_families=served or frozenset)
    return TextfileCollector(ctx)


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


def test_fixture_good_files_served_bad_ones_left_out():
    events = Events()
    batch = collect(make(TREE, events=events, served=lambda: {"node_load1"}))  # as loadavg does
    values, raw, fams = batch_values(batch), batch_raw(batch), batch_families(batch)
    served = sorted({name for name, _ in values})
    assert served == ["apt_upgrades_pending", "backup_duration_seconds_total", "backup_files_count_total",
                      "backup_last_success_timestamp_seconds", "backup_runs_total", "node_reboot_required",
                      "node_textfile_mtime_seconds", "node_textfile_scrape_error"]
    assert values["apt_upgrades_pending", ("amd64", "Ubuntu:22.04/jammy-updates")] == 12
    assert fams["apt_upgrades_pending"].label_names == ("arch", "origin")
    assert fams["apt_upgrades_pending"].help == "Apt packages pending updates by origin."
    assert values["node_reboot_required", ()] == 1  # apt.prom's, not dup_reboot.prom's 0
    # counters: union of label names, missing ones empty; a fractional one in micro-units
    assert fams["backup_runs_total"].label_names == ("job", "result")
    assert raw["backup_runs_total", ("etc", "")] == 412
    assert raw["backup_runs_total", ("home", "partial")] == 9
    assert fams["backup_duration_seconds_total"].type is MetricType.COUNTER
    assert raw["backup_duration_seconds_total", ("etc",)] == 1234500000
    assert values["backup_duration_seconds_total", ("etc",)] == pytest.approx(1234.5)
    # untyped: a gauge, or a counter when named *_total; HELP defaults to the file
    assert fams["backup_last_success_timestamp_seconds"].type is MetricType.GAUGE
    assert fams["backup_last_success_timestamp_seconds"].help == f"Metric read from {TEXTFILES}/backup.prom"
    assert fams["backup_files_count_total"].type is MetricType.COUNTER
    for name in ("apt.prom", "backup.prom"):
        path = f"{TEXTFILES}/{name}"
        mtime = int(os.stat(TREE / path.lstrip("/")).st_mtime)
        assert values["node_textfile_mtime_seconds", (path,)] == mtime
    assert ("node_textfile_mtime_seconds", (f"{TEXTFILES}/broken.prom",)) not in values
    assert values["node_textfile_scrape_error", ()] == 1
    faults = {labels["file"].rsplit("/", 1)[1]: message for kind, message, labels in events}
    assert sorted(faults) == ["broken.prom", "collides.prom", "dup_reboot.prom", "histogram.prom",
                              "stamped.prom"]
    assert "line 3: invalid value 'one'" in faults["broken.prom"]
    assert "node_load1: the agent already serves this family" in faults["collides.prom"]
    assert "already given in an earlier file" in faults["dup_reboot.prom"]
    assert "histogram families are not supported" in faults["histogram.prom"]
    assert "timestamps are not supported" in faults["stamped.prom"]


def test_faults_are_reported_once_and_recovery_too(tmp_path):
    d = tmp_path / "tf"
    d.mkdir()
    (d / "a.prom").write_text("a_value one\n")
    events = Events()
    collector = make(tmp_path, "/tf", served=lambda: set(), events=events)
    for _ in range(3):
        assert batch_values(collect(collector))["node_textfile_scrape_error", ()] == 1
    assert [e[0] for e in events] == ["textfile.invalid"]
    (d / "a.prom").write_text("a_value 1\n")
    values = batch_values(collect(collector))
    assert values["a_value", ()] == 1 and values["node_textfile_scrape_error", ()] == 0
    assert [e[0] for e in events] == ["textfile.invalid", "textfile.valid"]


@pytest.mark.parametrize("content, fault", [
    ("# TYPE x_total gauge\nx_total 1\n", "a gauge may not end in _total"),
    ("# TYPE x_total counter\nx_total -1\n", "must be >= 0"),
    ("x_total NaN\n", "must be >= 0"),
    ("# TYPE x_total counter\nx_total 2e19\n", "< 2**64"),
    ("# TYPE x_total counter\nx_total 2e13\nx_total{a=\"b\"} 0.5\n", "fractional"),
    ('x{a="1"} 1\nx{a="1"} 2\n', "already given in this file"),
    ('x{a="1",b=""} 1\nx{a="1"} 2\n', "already given in this file"),  # empty label = absent
    ("# TYPE s summary\ns_sum 1\ns_count 1\n", "summary families are not supported"),
    ("hostagent_up 1\n", "already serves"),
    ("process_open_fds 1\n", "already serves"),
    ("node_textfile_scrape_error 0\n", "already serves"),
    ("served_elsewhere 1\n", "already serves"),
    (b"caf\xe9 1\n", "not UTF-8"),
])
def test_a_bad_file_is_left_out_whole(tmp_path, content, fault):
    d = tmp_path / "tf"
    d.mkdir()
    bad = d / "b.prom"
    bad.write_bytes(content if isinstance(content, bytes) else f"good_before 1\n{content}".encode())
    (d / "c.prom").write_text("other_file 2\n")
    events = Events()
    values = batch_values(collect(make(tmp_path, "/tf", served=lambda: {"served_elsewhere"},
                                       events=events)))
    assert ("good_before", ()) not in values  # nothing of the bad file
    assert values["other_file", ()] == 2  # the other file still served
    assert values["node_textfile_scrape_error", ()] == 1
    assert len(events) == 1 and fault in events[0][1] and events[0][2] == {"file": "/tf/b.prom"}


def test_counter_without_total_is_a_gauge_and_types_must_agree_across_files(tmp_path):
    d = tmp_path / "tf"
    d.mkdir()
    (d / "1.prom").write_text('# TYPE requests counter\nrequests{code="200"} 5\n')
    (d / "2.prom").write_text('requests{code="500"} 1\n')  # untyped: a gauge too, merged
    (d / "3.prom").write_text('# TYPE jobs_total counter\njobs_total 1\n')
    (d / "4.prom").write_text('jobs_total{x="y"} 2.5\n')  # untyped *_total: a counter, merged
    batch = collect(make(tmp_path, "/tf", served=lambda: ()))
    values, fams = batch_values(batch), batch_families(batch)
    assert fams["requests"].type is MetricType.GAUGE
    assert values["requests", ("200",)] == 5 and values["requests", ("500",)] == 1
    assert fams["jobs_total"].label_names == ("x",) and fams["jobs_total"].scale == 1e-6
    assert values["jobs_total", ("",)] == 1 and values["jobs_total", ("y",)] == 2.5
    assert values["node_textfile_scrape_error", ()] == 0


def test_fifo_directory_and_oversized_files_do_not_block_or_break(tmp_path):
    d = tmp_path / "tf"
    d.mkdir()
    os.mkfifo(d / "pipe.prom")  # opening it for reading would block without O_NONBLOCK
    (d / "huge.prom").write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    (d / "sub.prom").mkdir()
    (d / "ok.prom").write_text("ok 1\n")
    events = Events()
    values = batch_values(collect(make(tmp_path, "/tf", served=lambda: (), events=events)))
    assert values["ok", ()] == 1 and values["node_textfile_scrape_error", ()] == 1
    faults = {labels["file"]: message for _, message, labels in events}
    assert "not a regular file" in faults["/tf/pipe.prom"]
    assert "larger than 4 MiB" in faults["/tf/huge.prom"]
    assert "/tf/sub.prom" in faults


def test_missing_directory_is_a_scrape_error_and_no_directory_is_off(tmp_path):
    values = batch_values(collect(make(tmp_path, "/nowhere", served=lambda: ())))
    assert values == {("node_textfile_scrape_error", ()): 1}
    # No directory configured: node_exporter's answer, scrape_error 0 and nothing else.
    values = batch_values(collect(make(tmp_path, directory="")))
    assert values == {("node_textfile_scrape_error", ()): 0}


def test_served_textfiles_render_back_to_the_same_values():
    from agent.exposition import render
    from agent.telemetry.store import SeriesStore

    store = SeriesStore(retention=60.0)
    store.ingest("textfile", collect(make(TREE, served=lambda: {"node_load1"})))
    parsed = {f.name: f for f in parse_text(render(store).decode())}
    runs = parsed["backup_runs_total"]
    assert runs.type == "counter"
    assert {(s.labels, s.value) for s in runs.samples} == {  # empty = absent for Prometheus
        ((("job", "etc"), ("result", "")), 412.0), ((("job", "home"), ("result", "partial")), 9.0)}
    assert parsed["backup_duration_seconds_total"].samples[0].value == 1234.5
    assert parsed["apt_upgrades_pending"].help == "Apt packages pending updates by origin."
    assert parsed["node_textfile_scrape_error"].samples[0].value == 1


@pytest.mark.integration
def test_the_agent_serves_textfiles_and_refuses_one_that_shadows_its_own_family(tmp_path):
    """Through the real agent: the families the other collectors serve (from
    the store) are what a textfile may not shadow."""
    import urllib.request

    from tests.agent_process import AgentProcess

    d = tmp_path / "textfiles"
    d.mkdir()
    (d / "mine.prom").write_text("# TYPE site_backup_age_seconds gauge\nsite_backup_age_seconds 42\n")
    (d / "shadow.prom").write_text("node_load1 99\n")
    config = f'[telemetry]\ninterval = "0.5s"\n[collectors.textfile]\ndirectory = "{d}"\n'
    with AgentProcess(tmp_path, config=config) as agent:
        agent.wait_ready()
        deadline = time.monotonic() + 15
        while True:
            text = urllib.request.urlopen(agent.metrics_url, timeout=5).read().decode()
            # The sample line, not the HELP text that also starts this way.
            failed = re.search(r"^node_textfile_scrape_error 1(\.0)?$", text, re.MULTILINE)
            if ("site_backup_age_seconds 42" in text and failed) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert "site_backup_age_seconds 42" in text
        assert failed, "the shadowing file was served"
        assert not re.search(r"^node_load1 99", text, re.MULTILINE)
        assert agent.wait_event("textfile.invalid")["file"] == str(d / "shadow.prom")
