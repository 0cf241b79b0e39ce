"""Node Exporter Full (Grafana 1860) works unchanged on the agent (issue 12):
a real Prometheus scrapes the agent and the real node_exporter side by side;
of the metric names the dashboard's PromQL uses (the extracted list,
tests/fixtures/dashboards/node-exporter-full.names) the agent serves at
least 95% of those node_exporter serves on this host, and the dashboard's
template variables resolve for the agent's job."""
import os
import pathlib
import time
import urllib.parse

import pytest

from scripts.dashboard_metrics import dashboard_names, names_in
from tests.agent_process import AgentProcess
from tests.node_exporter_process import NodeExporter, require_node_exporter
from tests.prometheus_server import PROMETHEUS, PrometheusServer

pytestmark = pytest.mark.integration
NAMES = pathlib.Path(__file__).resolve().parent / "fixtures/dashboards/node-exporter-full.names"


def dashboard_list() -> list[str]:
    return [line.strip() for line in NAMES.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def series_labels(prom: PrometheusServer, match: str, label: str) -> set[str]:
    """Grafana's label_values(<match>, <label>)."""
    data = prom._get("/api/v1/series", **{"match[]": match})
    return {s[label] for s in data if label in s}  # type: ignore[union-attr]


def test_the_agent_serves_the_dashboards_names_and_its_variables_resolve(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (scripts/bootstrap.sh test installs it)")
    require_node_exporter()
    wanted = set(dashboard_list())
    with NodeExporter() as ne, AgentProcess(tmp_path) as agent:
        agent.wait_ready()
        target = urllib.parse.urlparse(agent.metrics_url).netloc
        jobs = {"hostagent": target, "node": ne.target}
        with PrometheusServer(tmp_path, jobs, "1s") as prom:
            for job in jobs:
                prom.wait_for(f'node_uname_info{{job="{job}"}}')
            time.sleep(3)  # every collector of both has been scraped at least once
            served = {job: prom.series_names(f'{{job="{job}"}}') & wanted for job in jobs}
            # The template variables, as the dashboard defines them.
            assert "hostagent" in series_labels(prom, "node_uname_info", "job")
            assert series_labels(prom, 'node_uname_info{job="hostagent"}', "instance") == {target}
            assert series_labels(prom, 'node_uname_info{job="hostagent"}', "nodename") == {os.uname().nodename}
            # A panel as the dashboard runs it, with the variables substituted.
            busy = prom.query('100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle", '
                              f'instance="{target}"}}[4s])))')
            assert busy and 0 <= float(busy[0]["value"][1]) <= 100
    node, mine = served["node"], served["hostagent"]
    covered = node & mine
    ratio = len(covered) / len(node)
    print(f"\ndashboard names {len(wanted)}; node_exporter serves {len(node)}, the agent "
          f"{len(mine)}, {len(covered)} of node_exporter's ({ratio:.1%}); not served: "
          f"{sorted(node - mine)}")
    assert ratio >= 0.95, sorted(node - mine)


def test_the_extraction_reads_exprs_and_variables():
    dashboard = {"panels": [{"type": "row", "panels": [{"targets": [
        {"expr": 'sum by(instance) (irate(node_cpu_seconds_total{instance="$node",mode!=\'idle\'}'
                 '[$__rate_interval])) / on(instance) group_left sum by (instance)'
                 '((irate(node_cpu_seconds_total{instance="$node"}[1m])))'},
        {"expr": 'node_hwmon_temp_celsius * on(chip) group_left(chip_name) node_hwmon_chip_names'},
        {"expr": 'scalar(avg_over_time(node_load5[5m])) * 100 / count(count(x_total) by (cpu)) > 1e3'}]}]}],
        "templating": {"list": [
            {"type": "query", "query": {"query": "label_values(node_uname_info, job)"}},
            {"type": "query", "definition": 'label_values(node_uname_info{job="$job"}, nodename)'},
            {"type": "custom", "query": "[a-z]+|nvme[0-9]+n[0-9]+"}]}}
    assert dashboard_names(dashboard) == {"node_cpu_seconds_total", "node_hwmon_temp_celsius",
                                          "node_hwmon_chip_names", "node_load5", "x_total",
                                          "node_uname_info"}
    assert names_in('node_memory_MemTotal_bytes{job="$job"} - ignoring(a) b') == {
        "node_memory_MemTotal_bytes", "b"}
    assert "node_uname_info" in dashboard_list() and len(dashboard_list()) > 150
