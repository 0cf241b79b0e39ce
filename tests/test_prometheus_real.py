"""A real Prometheus server (Debian's ``prometheus``) scrapes the agent and
answers PromQL queries about what it scraped."""
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base: str, promql: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (scripts/bootstrap.sh test installs it)")
def test_prometheus_scrapes_the_agent(tmp_path):
    with AgentProcess(tmp_path, config='[telemetry]\ninterval = "1s"\n') as agent:
        agent.wait_ready()
        target = urllib.parse.urlparse(agent.metrics_url).netloc
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: hostagent\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            result = []
            while time.monotonic() < deadline and not result:
                time.sleep(1)
                try:
                    result = query(base, 'node_cpu_seconds_total{cpu="0",mode="idle"}')
                except OSError:
                    continue  # not listening yet
            assert result, "Prometheus never returned node_cpu_seconds_total"
            assert result[0]["metric"]["job"] == "hostagent"
            assert float(result[0]["value"][1]) > 0
            assert query(base, 'up{job="hostagent"}')[0]["value"][1] == "1"
            # Counters behave as counters: once the 5 s window is full of
            # scrapes, rate() says one CPU accumulates one second per second.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(1)
                full = query(base, 'count_over_time(node_cpu_seconds_total{cpu="0",mode="idle"}[5s])')
                if full and float(full[0]["value"][1]) >= 5:
                    break
            rate = query(base, 'sum(rate(node_cpu_seconds_total{cpu="0"}[5s]))')
            assert rate and 0.7 < float(rate[0]["value"][1]) < 1.3, rate
        finally:
            prom.terminate()
            try:
                prom.wait(10)
            except subprocess.TimeoutExpired:
                prom.kill()
