"""Rates are right when Prometheus scrapes more often than the agent's
collection interval (issue 12): a real Prometheus scrapes the agent every
second while the agent collects at its default 5 s, and every scrape must see
fresh values of the counters (docs/architecture.md, "Fresh values for every
scrape")."""
import time
import urllib.parse

import pytest

from tests.agent_process import AgentProcess
from tests.prometheus_server import PROMETHEUS, PrometheusServer

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed "
                                 "(scripts/bootstrap.sh test installs it)")]
WINDOW = 20  # seconds of 1 s scrapes looked at


def test_irate_at_a_1s_scrape_has_no_zeros_and_no_spikes(tmp_path):
    # Defaults (5 s interval) but for the collectors this test does not read.
    with AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        target = urllib.parse.urlparse(agent.metrics_url).netloc
        with PrometheusServer(tmp_path, {"hostagent": target}, "1s") as prom:
            prom.wait_for('node_context_switches_total{job="hostagent"}')
            t0 = time.time()
            time.sleep(WINDOW + 3)
            end = time.time()
            start = end - WINDOW
            assert start > t0
            # One CPU accumulates one second per second over all its modes:
            # with a sample repeated from a 5 s collection, irate reads 0 at
            # four points of five and 5 at the fifth.
            cpu = prom.query_range('sum(irate(node_cpu_seconds_total{job="hostagent",cpu="0"}[3s]))',
                                   start, end, 1.0)
            points = [float(v) for _, v in cpu[0]["values"]]
            assert len(points) >= WINDOW - 1
            assert all(0.75 < p < 1.25 for p in points), points
            # A busy counter moves between every two scrapes, and so irate is never 0.
            switches = prom.query_range('irate(node_context_switches_total{job="hostagent"}[3s])',
                                        start, end, 1.0)
            rates = [float(v) for _, v in switches[0]["values"]]
            assert min(rates) > 0, rates
            changes = prom.query(f'changes(node_context_switches_total{{job="hostagent"}}[{WINDOW}s])',
                                 at=end)
            samples = prom.query(f'count_over_time(node_context_switches_total{{job="hostagent"}}[{WINDOW}s])',
                                 at=end)
            assert float(changes[0]["value"][1]) >= float(samples[0]["value"][1]) - 2
            # rate() over the dashboard's shortest window ($__rate_interval, 4 scrapes)
            rate = prom.query('sum(rate(node_cpu_seconds_total{job="hostagent",cpu="0"}[4s]))', at=end)
            assert 0.8 < float(rate[0]["value"][1]) < 1.2, rate
