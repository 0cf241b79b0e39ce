"""An agent nobody asks does nothing; asked, it answers at once.

What an operator notices of the idle design (docs/architecture.md, "Fresh
values for every scrape"): after its start the agent collects only when
scraped or read through the API, a gRPC read brings the schedule (and so
history) back, the scheduler does not poll, a healthy start logs no failed
collector, and the command line loads no server code.  Timing goals live in
bench/ (bench_node.py, bench_start.py); the margins here are wide.
"""
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.collectors.agent import boot_time, parse_self_stat
from agent.gen.hostagent.v1 import telemetry_pb2 as pb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc as pb_grpc
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch
from agent.telemetry.scheduler import CollectorSpec, Scheduler
from agent.telemetry.store import SeriesStore
from tests.agent_process import AgentProcess

ROOT = Path(__file__).parent.parent


def last_success(url: str, collector: str) -> float | None:
    """When ``collector`` last succeeded, as the agent's own collector saw
    it at this scrape (it runs before the others the scrape asks for)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if (s.name == "hostagent_collector_last_success_timestamp_seconds"
                    and s.labels.get("collector") == collector):
                return s.value
    return None  # not run yet


def test_idle_agent_collects_only_when_asked_and_a_grpc_read_resumes_the_schedule(tmp_path):
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        deadline = time.monotonic() + 20
        while last_success(agent.metrics_url, "netdev") is None:  # its start-up run
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(3.0)
        # netdev's interval is 1 s: on a schedule it would have run twice since.
        age = time.time() - last_success(agent.metrics_url, "netdev")
        assert age > 2.0, f"netdev ran {age:.1f}s ago although nobody asked"
        with agent.channel() as channel:
            pb_grpc.TelemetryStub(channel).GetMetrics(
                pb.GetMetricsRequest(selector=pb.MetricSelector(names=["node_load1"])), timeout=10)
        time.sleep(3.0)
        age = time.time() - last_success(agent.metrics_url, "netdev")
        assert age < 2.0, f"after a gRPC read netdev should keep its 1 s schedule ({age:.1f}s)"
        assert agent.events("collector.failed") == []  # a healthy start fails nothing


def test_scheduler_with_nothing_due_does_not_wake():
    class Once:
        def collect(self, batch: Batch) -> None:
            pass

    sched = Scheduler(SeriesStore(retention=60), EventBus())
    sched.set_collectors([CollectorSpec("hourly", Once(), 3600.0, 60.0),
                          CollectorSpec("on_demand", Once(), 1.0, 60.0, on_scrape=True,
                                        background=False)])
    sched.start()
    try:
        deadline = time.monotonic() + 5
        while any(s.runs_total == 0 for s in sched.statuses()):  # the start-up runs
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        beat = sched.heartbeat
        time.sleep(1.0)  # the old loop looked every 0.25 s
        assert sched.heartbeat == beat, "the scheduler woke with nothing due"
        assert sched.lag() == 0.0  # and the watchdog still sees it healthy
        assert [s.runs_total for s in sched.statuses()] == [1, 1]
    finally:
        sched.stop()


def test_the_command_line_loads_no_server_code():
    code = ("import sys, agent.cli; import agent.collectors; "
            "print(' '.join(sorted(m for m in sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.split())
    assert "agent.cli" in loaded
    for server in ("agent.daemon", "agent.api.server", "agent.telemetry.scheduler"):
        assert server not in loaded, f"the CLI imports {server}"
    # The host's collectors load pyroute2 and psutil only when they run.
    assert not {"pyroute2", "psutil"} & loaded


def test_self_stat_parser_on_a_recorded_line():
    # /proc/<pid>/stat of a python process whose name holds ") (" on purpose
    line = ("4242 (py ) (agent) S 1 4242 4242 0 -1 4194560 5321 0 0 0 431 57 0 0 20 0 38 0 "
            "2160386 1214566400 12210 18446744073709551615 1 1 0 0 0 0 0 16781312 17642 0 0 0 "
            "17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    st = parse_self_stat(line, 100, 4096)
    assert st.cpu_seconds == 4.88 and st.threads == 38 and st.start_ticks == 2160386
    assert st.vms_bytes == 1214566400 and st.rss_bytes == 12210 * 4096
    assert boot_time("cpu  1 2 3\nbtime 1796303526\nprocesses 9\n") == 1796303526.0


# -- collectors skip work that cannot have changed --------------------------
def netstat_runs(root: Path) -> tuple[dict, dict, dict]:
    """Two planned runs and one full parse of the same files."""
    from agent.backends.hostfs import HostFS
    from agent.collectors.netstat import NetstatCollector, fields_pattern
    from agent.telemetry.collector import CollectorContext
    from tests.helpers import batch_values

    c = NetstatCollector(CollectorContext(hostfs=HostFS(str(root)),
                                          options={"fields": fields_pattern(".*")}))
    out = []
    for run in (c.collect, c.collect, c.collect_parsed):
        batch = Batch()
        run(batch)
        out.append(batch_values(batch))
    return tuple(out)


def test_netstat_plan_serves_what_a_full_parse_serves(tmp_path):
    fixture = ROOT / "tests/fixtures/hosts"
    tree = next(p.parent.parent.parent for p in fixture.glob("*/proc/net/snmp6"))
    first, again, parsed = netstat_runs(tree)
    assert first == again == parsed and len(parsed) > 300
    live = netstat_runs(Path("/"))  # the host's own files, values moving between reads
    assert set(live[0]) == set(live[2])
    # A kernel with other fields (a new header): the plan is made again.
    (tmp_path / "proc/net").mkdir(parents=True)
    for name in ("netstat", "snmp", "snmp6"):
        (tmp_path / "proc/net" / name).write_text((tree / "proc/net" / name).read_text())
    from agent.backends.hostfs import HostFS
    from agent.collectors.netstat import NetstatCollector
    from agent.telemetry.collector import CollectorContext
    from tests.helpers import batch_values
    c = NetstatCollector(CollectorContext(hostfs=HostFS(str(tmp_path))))
    c.collect(Batch())
    (tmp_path / "proc/net/snmp").write_text("Tcp: ActiveOpens CurrEstab\nTcp: 7 3\n")
    batch = Batch()
    c.collect(batch)
    values = batch_values(batch)
    assert values[("node_netstat_Tcp_ActiveOpens", ())] == 7
    assert values[("node_netstat_Tcp_CurrEstab", ())] == 3
    assert ("node_netstat_Udp_InDatagrams", ()) not in values


def test_vmstat_plan_serves_what_a_full_parse_serves(tmp_path):
    from agent.backends.hostfs import HostFS
    from agent.collectors.vmstat import VmstatCollector
    from agent.telemetry.collector import CollectorContext
    from tests.helpers import batch_values

    (tmp_path / "proc").mkdir()
    vmstat = tmp_path / "proc/vmstat"
    vmstat.write_text("nr_free_pages 100\npgfault 5\npgmajfault 1\noom_kill 0\n")
    c = VmstatCollector(CollectorContext(hostfs=HostFS(str(tmp_path))))

    def served(run) -> dict:
        batch = Batch()
        run(batch)
        return {name: v for (name, _), v in batch_values(batch).items()}

    assert served(c.collect) == {"node_vmstat_pgfault": 5, "node_vmstat_pgmajfault": 1,
                                 "node_vmstat_oom_kill": 0}
    vmstat.write_text("nr_free_pages 90\npgfault 9\npgmajfault 2\noom_kill 1\n")
    assert served(c.collect) == served(c.collect_parsed) == {
        "node_vmstat_pgfault": 9, "node_vmstat_pgmajfault": 2, "node_vmstat_oom_kill": 1}
    vmstat.write_text("pgfault 10\nnr_free_pages 90\npgmajfault 3\noom_kill 1\n")  # other order
    assert served(c.collect)["node_vmstat_pgfault"] == 10
    assert served(c.collect) == served(c.collect_parsed)
    live = VmstatCollector(CollectorContext(hostfs=HostFS("/")))
    assert set(served(live.collect)) == set(served(live.collect)) == set(served(live.collect_parsed))
