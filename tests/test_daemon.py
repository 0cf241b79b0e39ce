"""The real agent process, as an operator and a control plane meet it:
readiness, watchdog, /metrics, values that agree with the kernel, SIGTERM
with open streams, SIGHUP reload, bad config."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from agent.gen.hostagent.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc
from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration
FAST = """
[telemetry]
interval = "0.5s"
timeout = "2s"
"""


@pytest.fixture
def agent(tmp_path):
    with AgentProcess(tmp_path, config=FAST) as a:
        yield a.wait_ready()


def scrape(agent) -> dict:
    with urllib.request.urlopen(agent.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def proc_stat_seconds(cpu: str, mode: str) -> float:
    modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == f"cpu{cpu}":
                return int(parts[1 + modes.index(mode)]) / os.sysconf("SC_CLK_TCK")
    raise KeyError(cpu)


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cond()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_metrics_endpoint_parses_and_cpu_seconds_agree_with_proc_stat(agent):
    def collected():
        fams, text = scrape(agent)
        up = {s.labels["collector"]: s.value for s in fams["hostagent_collector_up"].samples} \
            if "hostagent_collector_up" in fams else {}
        return (fams, text) if {"cpu", "meminfo"} <= set(up) else None

    fams, text = wait_until(collected)
    assert "# HELP node_cpu_seconds_total" in text and "# TYPE node_cpu_seconds_total counter" in text
    samples = {(s.labels["cpu"], s.labels["mode"]): s.value for s in fams["node_cpu_seconds"].samples}
    kernel = proc_stat_seconds("0", "user")
    # Collected before this read, at most an interval (0.5 s, more on a busy
    # machine) ago: a CPU accumulates at most one second per second.
    assert kernel - 2.0 <= samples[("0", "user")] <= kernel + 1e-6  # ticks x (1/HZ) rounding
    assert fams["node_memory_MemTotal_bytes"].samples[0].value > 0
    up = {s.labels["collector"]: s.value for s in fams["hostagent_collector_up"].samples}
    assert up["cpu"] == 1 and up["meminfo"] == 1
    info = fams["hostagent_build_info"].samples[0].labels
    assert info["kernels"] in ("cython", "python")


def test_grpc_get_metrics_agrees_with_proc_stat(agent):
    with agent.channel() as ch:
        stub = telemetry_pb2_grpc.TelemetryStub(ch)
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        req = pb.GetMetricsRequest(selector=pb.MetricSelector(
            names=["node_cpu_seconds_total"], matchers=[pb.LabelMatcher(name="cpu", value="0"),
                                                        pb.LabelMatcher(name="mode", value="user")]))
        resp = wait_until(lambda: stub.GetMetrics(req, timeout=5).families)
        value = resp[0].samples[0].value
    kernel = proc_stat_seconds("0", "user")
    assert kernel - 2.0 <= value <= kernel + 1e-6  # ticks x (1/HZ) rounding


def test_kernel_implementation_is_logged_and_exported(tmp_path):
    forced = os.environ.get("HOSTAGENT_NO_EXTENSIONS") == "1"
    with AgentProcess(tmp_path, config=FAST) as a:
        a.wait_ready()
        started = a.wait_event("agent.starting")
        fams, _ = wait_until(lambda: (lambda f: f if "hostagent_build_info" in f[0] else None)(scrape(a)))
        exported = fams["hostagent_build_info"].samples[0].labels["kernels"]
    assert started["kernels"] == exported
    if forced:
        assert exported == "python"
    elif os.environ.get("HOSTAGENT_REQUIRE_EXTENSIONS") == "1":
        assert exported == "cython"


def test_sd_notify_ready_then_watchdog_pings(tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(15)
    with AgentProcess(tmp_path, config=FAST, env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "1000000"}) as a:
        messages = []
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        a.stop()
        while not any("STOPPING=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    watchdog = next(i for i, m in enumerate(messages) if "WATCHDOG=1" in m)
    assert ready < watchdog


def test_sigterm_with_open_streams_exits_zero_within_five_seconds(agent):
    with agent.channel() as ch:
        stub = telemetry_pb2_grpc.TelemetryStub(ch)
        req = pb.StreamMetricsRequest(selector=pb.MetricSelector(names=["node_load1"]))
        req.interval.seconds = 1
        streams = [stub.StreamMetrics(req, timeout=60), stub.WatchEvents(pb.WatchEventsRequest(), timeout=60)]
        next(streams[0])
        codes = []

        def drain(call):
            try:
                for _ in call:
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())

        threads = [threading.Thread(target=drain, args=(c,)) for c in streams]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        agent.signal(signal.SIGTERM)
        rc = agent.proc.wait(10)
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(5)
    assert rc == 0 and elapsed < 5.0, elapsed
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 2
    assert agent.wait_event("agent.stopped")
    assert not agent.socket.exists()


def test_sighup_reloads_and_a_bad_reload_keeps_the_running_config(tmp_path):
    with AgentProcess(tmp_path, config=FAST) as a:
        a.wait_ready()
        a.config.write_text(FAST + "\n[collectors.loadavg]\nenabled = false\n")
        a.signal(signal.SIGHUP)
        a.wait_event("config.reloaded")
        fams = wait_until(lambda: (lambda f: f if "node_load1" not in f[0] else None)(scrape(a)))
        assert "node_cpu_seconds" in fams[0]
        a.config.write_text("[telemetry]\nretention = \"forever\"\n")
        a.signal(signal.SIGHUP)
        failed = a.wait_event("config.reload_failed")
        assert "telemetry.retention" in failed["error"]
        time.sleep(1.0)
        assert a.proc.poll() is None and "node_cpu_seconds" in scrape(a)[0]


@pytest.mark.parametrize("config, key", [
    ("[telemetry]\nretention = \"forever\"\n", "telemetry.retention"),
    ("[server]\ngrpc_listne = \"127.0.0.1:1\"\n", "server.grpc_listne"),
    ("[collectors.nosuch]\nenabled = true\n", "collectors.nosuch"),
])
def test_bad_config_refuses_to_start_and_names_the_key(tmp_path, config, key):
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = subprocess.run([sys.executable, "-m", "agent", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert key in result.stderr and "config.invalid" in result.stderr
    check = subprocess.run([sys.executable, "-m", "agent", "check-config", str(path)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 2 and key in check.stderr
