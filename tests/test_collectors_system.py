"""The kernel/system collectors (uname, os, time, timex, vmstat, entropy,
filefd, schedstat) on the ``vm-sys`` tree (tests/fixtures/hosts/vm-sys/, see
its README): parsers on the recorded files with exact values, collectors end
to end through HostFS, injected backends for the syscalls, and NoData on an
empty tree."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.backends.adjtimex import Timex
from agent.backends.hostfs import HostFS
from agent.backends.uname import Uname
from agent.collectors.entropy import EntropyCollector, parse_entropy
from agent.collectors.filefd import FilefdCollector, parse_file_nr
from agent.collectors.os_release import OsReleaseCollector, parse_os_release, unquote
from agent.collectors.schedstat import SchedstatCollector, parse_schedstat
from agent.collectors.systime import TimeCollector, Zone, parse_clocksource
from agent.collectors.timex import TimexCollector, convert
from agent.collectors.uname import UnameCollector
from agent.collectors.vmstat import VmstatCollector, parse_vmstat
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch
from tests.helpers import batch_families, batch_raw, batch_values

VM = Path(__file__).parent / "fixtures" / "hosts" / "vm-sys"
# This guest's uname(2) and adjtimex(2), recorded with the backends.
VM_UNAME = Uname("Linux", "vm", "6.18.44-fc-v1098", "#1 SMP PREEMPT_DYNAMIC @0", "x86_64", "(none)")
VM_TIMEX = Timex(state=5, offset=0, freq=0, maxerror=16000000, esterror=16000000, status=64,
                 constant=2, tick=10000, ppsfreq=0, jitter=0, shift=0, stabil=0, jitcnt=0,
                 calcnt=0, errcnt=0, stbcnt=0, tai=0)


def ctx(root: Path, **options) -> CollectorContext:
    return CollectorContext(hostfs=HostFS(root), options=options)


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


# -- uname --------------------------------------------------------------------
def test_uname_info_carries_every_field_in_node_exporter_order():
    batch = collect(UnameCollector(ctx(VM), uname=lambda: VM_UNAME))
    assert batch_values(batch) == {("node_uname_info", (
        "Linux", "6.18.44-fc-v1098", "#1 SMP PREEMPT_DYNAMIC @0", "x86_64", "vm", "(none)")): 1}
    assert batch_families(batch)["node_uname_info"].label_names == (
        "sysname", "release", "version", "machine", "nodename", "domainname")


# -- os -----------------------------------------------------------------------
def test_os_release_parser_on_the_recorded_file():
    release = parse_os_release((VM / "usr/lib/os-release").read_text())
    assert (release.id, release.name, release.pretty_name) == (
        "debian", "Debian GNU/Linux", "Debian GNU/Linux 12 (bookworm)")
    assert (release.version, release.version_id, release.version_codename) == (
        "12 (bookworm)", "12", "bookworm")
    assert release.id_like == release.build_id == release.support_end == ""
    assert release.version_number == 12.0


def test_os_release_quoting_and_version_and_support_end():
    release = parse_os_release(
        "# comment\nNAME='Ubuntu'\nID=ubuntu\nID_LIKE=debian\n"
        'PRETTY_NAME="Say \\"hi\\" \\\\ \\$HOME"\nVERSION_ID="22.04"\n'
        "SUPPORT_END=2027-06-01\nBOGUS line\nUNKNOWN_KEY=x\n")
    assert release.name == "Ubuntu" and release.id_like == "debian"
    assert release.pretty_name == 'Say "hi" \\ $HOME'
    assert release.version_number == 22.04
    assert release.support_end_timestamp == 1811808000.0  # 2027-06-01T00:00:00Z
    assert parse_os_release("VERSION_ID=rolling\n").version_number is None
    assert parse_os_release("VERSION_ID=10.5.3\n").version_number == 10.5
    assert unquote("plain") == "plain" and unquote('"a\\b"') == "a\\b"


def test_os_collector_on_the_tree_follows_the_relative_symlink():
    assert (VM / "etc/os-release").is_symlink()
    values = batch_values(collect(OsReleaseCollector(ctx(VM))))
    assert values == {
        ("node_os_info", ("", "debian", "", "", "", "Debian GNU/Linux",
                          "Debian GNU/Linux 12 (bookworm)", "", "", "12 (bookworm)", "bookworm",
                          "12")): 1,
        ("node_os_version", ("debian", "", "Debian GNU/Linux")): 12.0,
    }


def test_os_absolute_symlink_stays_inside_the_root_and_usr_lib_is_the_fallback(tmp_path: Path):
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text('ID=rhel\nVERSION_ID="9.3"\nSUPPORT_END=2032-05-31\n')
    values = batch_values(collect(OsReleaseCollector(ctx(tmp_path))))  # no etc/os-release
    assert values[("node_os_version", ("rhel", "", ""))] == 9.3
    assert values[("node_os_support_end_timestamp_seconds", ())] == 1969574400.0  # 2032-05-31T00:00:00Z
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").symlink_to("/usr/lib/os-release")  # absolute: the host's
    values = batch_values(collect(OsReleaseCollector(ctx(tmp_path))))
    assert values[("node_os_version", ("rhel", "", ""))] == 9.3


# -- time ---------------------------------------------------------------------
def test_time_collector_on_the_tree():
    collector = TimeCollector(ctx(VM), clock=lambda: 1700000000.25,
                              zone=lambda now: Zone("CET", 3600))
    assert batch_values(collect(collector)) == {
        ("node_time_seconds", ()): 1700000000.25,
        ("node_time_zone_offset_seconds", ("CET",)): 3600,
        ("node_time_clocksource_available_info", ("0", "tsc")): 1,
        ("node_time_clocksource_available_info", ("0", "kvm-clock")): 1,
        ("node_time_clocksource_current_info", ("0", "tsc")): 1,
    }


def test_clocksource_parser_and_no_clocksource_dir(tmp_path: Path):
    assert parse_clocksource("tsc hpet acpi_pm \n", "tsc\n") == (("tsc", "hpet", "acpi_pm"), "tsc")
    values = batch_values(collect(TimeCollector(ctx(tmp_path), clock=lambda: 5.0)))
    assert {name for name, _ in values} == {"node_time_seconds", "node_time_zone_offset_seconds"}


# -- timex --------------------------------------------------------------------
def test_timex_unsynchronised_guest():
    values = batch_values(collect(TimexCollector(ctx(VM), timex=lambda: VM_TIMEX)))
    assert values[("node_timex_sync_status", ())] == 0  # TIME_ERROR, STA_UNSYNC set
    assert values[("node_timex_status", ())] == 64
    assert values[("node_timex_maxerror_seconds", ())] == 16.0
    assert values[("node_timex_estimated_error_seconds", ())] == 16.0
    assert values[("node_timex_tick_seconds", ())] == 0.01
    assert values[("node_timex_frequency_adjustment_ratio", ())] == 1.0
    assert values[("node_timex_loop_time_constant", ())] == 2
    assert len(values) == 17


def test_timex_units_of_a_synchronised_clock_in_nanosecond_mode():
    synced = VM_TIMEX._replace(state=0, status=0x2001, offset=-123456, freq=-1310720,
                               maxerror=1500, esterror=12, jitter=2500, ppsfreq=655360,
                               stabil=65536, shift=2, tai=37, jitcnt=1, calcnt=2, errcnt=3,
                               stbcnt=4)
    v = convert(synced)
    assert v.sync_status == 1
    assert v.offset_seconds == pytest.approx(-123456e-9)  # STA_NANO: ns
    assert v.pps_jitter_seconds == pytest.approx(2.5e-6)
    assert v.frequency_adjustment_ratio == pytest.approx(1 - 20e-6)  # -20 ppm
    assert v.maxerror_seconds == pytest.approx(0.0015) and v.estimated_error_seconds == 12e-6
    assert v.pps_frequency_hertz == pytest.approx(1e-5)
    assert v.pps_stability_hertz == pytest.approx(1e-6)
    assert (v.pps_shift_seconds, v.tai_offset_seconds) == (2, 37)
    assert convert(synced._replace(status=0x0001)).offset_seconds == pytest.approx(-0.123456)
    raw = batch_raw(collect(TimexCollector(ctx(VM), timex=lambda: synced)))
    assert raw == {("node_timex_pps_jitter_total", ()): 1, ("node_timex_pps_calibration_total", ()): 2,
                   ("node_timex_pps_error_total", ()): 3,
                   ("node_timex_pps_stability_exceeded_total", ()): 4}


def test_timex_refused_by_seccomp_is_nodata():
    def refused() -> Timex:
        raise PermissionError(1, "Operation not permitted")
    with pytest.raises(NoData, match="adjtimex"):
        collect(TimexCollector(ctx(VM), timex=refused))


# -- vmstat -------------------------------------------------------------------
def test_vmstat_parser_reads_every_field():
    values = parse_vmstat((VM / "proc/vmstat").read_text())
    assert len(values) == 192
    assert values["pgfault"] == 23639846 and values["nr_free_pages"] > 0


def test_vmstat_default_fields_are_node_exporters():
    batch = collect(VmstatCollector(ctx(VM)))
    assert batch_values(batch) == {
        ("node_vmstat_pgpgin", ()): 1943325, ("node_vmstat_pgpgout", ()): 1815304,
        ("node_vmstat_pswpin", ()): 0, ("node_vmstat_pswpout", ()): 0,
        ("node_vmstat_pgfault", ()): 23639846, ("node_vmstat_pgmajfault", ()): 1902,
        ("node_vmstat_oom_kill", ()): 0,
    }
    assert all(f.type.name == "GAUGE" for f in batch_families(batch).values())


def test_vmstat_fields_option():
    values = batch_values(collect(VmstatCollector(ctx(VM, fields=r"^(pgsteal|pgscan)_(kswapd|direct)$"))))
    assert set(values) == {("node_vmstat_pgsteal_kswapd", ()), ("node_vmstat_pgsteal_direct", ()),
                           ("node_vmstat_pgscan_kswapd", ()), ("node_vmstat_pgscan_direct", ())}
    everything = batch_values(collect(VmstatCollector(ctx(VM, fields=re.compile(".")))))
    assert len(everything) == 192


# -- entropy, filefd ----------------------------------------------------------
def test_entropy():
    assert parse_entropy("256\n", None) == (256, None)
    assert batch_values(collect(EntropyCollector(ctx(VM)))) == {
        ("node_entropy_available_bits", ()): 256, ("node_entropy_pool_size_bits", ()): 256}


def test_filefd():
    assert parse_file_nr((VM / "proc/sys/fs/file-nr").read_text()) == (1057, 2466097)
    with pytest.raises(ValueError):
        parse_file_nr("12\n")
    assert batch_values(collect(FilefdCollector(ctx(VM)))) == {
        ("node_filefd_allocated", ()): 1057, ("node_filefd_maximum", ()): 2466097}


# -- schedstat ----------------------------------------------------------------
def test_schedstat_parser_takes_the_last_three_cpu_fields():
    cpus = parse_schedstat((VM / "proc/schedstat").read_text())
    assert cpus == [("0", 3059938743466, 98342354345, 43563624),
                    ("1", 2843329071281, 101567398912, 41234587)]


def test_schedstat_collector_counts_in_seconds():
    batch = collect(SchedstatCollector(ctx(VM)))
    raw, values = batch_raw(batch), batch_values(batch)
    assert raw[("node_schedstat_running_seconds_total", ("0",))] == 3059938743466
    assert values[("node_schedstat_running_seconds_total", ("0",))] == pytest.approx(3059.938743466)
    assert values[("node_schedstat_waiting_seconds_total", ("1",))] == pytest.approx(101.567398912)
    assert raw[("node_schedstat_timeslices_total", ("1",))] == 41234587
    assert len(raw) == 6


# -- absent -------------------------------------------------------------------
@pytest.mark.parametrize("cls", [OsReleaseCollector, VmstatCollector, EntropyCollector,
                                 FilefdCollector, SchedstatCollector])
def test_nodata_on_an_empty_tree(cls, tmp_path: Path):
    with pytest.raises(NoData):
        collect(cls(ctx(tmp_path)))


def test_fixture_tree_has_no_stray_symlink_out_of_it():
    for dirpath, dirnames, filenames in os.walk(VM):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                assert not os.readlink(path).startswith("/"), path
