"""The agent's own process metrics under the names every Prometheus client
library exports, so the standard alerts (restarts, fd exhaustion, memory
growth) work on it unchanged."""
import time
import urllib.request

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


def test_standard_process_metrics(tmp_path):
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        deadline = time.monotonic() + 15
        while "process_cpu_seconds_total" not in (values := scrape(agent.metrics_url)):
            assert time.monotonic() < deadline, sorted(values)
            time.sleep(0.2)
        me = psutil.Process(agent.proc.pid)
        assert abs(values["process_start_time_seconds"] - me.create_time()) < 1.0
        assert 10e6 < values["process_resident_memory_bytes"] < 1e9
        assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
        assert 0 < values["process_cpu_seconds_total"] < 60
        assert 5 < values["process_open_fds"] < values["process_max_fds"]
        assert values["process_max_fds"] == me.rlimit(psutil.RLIMIT_NOFILE)[0]
