"""A real Prometheus server (Debian's ``prometheus``) for the integration
tests: started on a loopback port with a scrape config the test writes, on a
fresh TSDB in the test's temporary directory, and asked PromQL over its HTTP
API as Grafana would."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusServer:
    """``jobs`` maps a job name to its ``host:port`` target."""

    def __init__(self, tmp: Path, jobs: dict[str, str], scrape_interval: str = "1s") -> None:
        lines = [f"global:\n  scrape_interval: {scrape_interval}\n"
                 f"  evaluation_interval: {scrape_interval}\nscrape_configs:\n"]
        for job, target in jobs.items():
            lines.append(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n")
        config = tmp / "prometheus.yml"
        config.write_text("".join(lines))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def _get(self, path: str, **params: str) -> object:
        url = f"{self.base}{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list:
        params = {"query": promql} if at is None else {"query": promql, "time": repr(at)}
        return self._get("/api/v1/query", **params)["result"]  # type: ignore[index]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list:
        return self._get("/api/v1/query_range", query=promql, start=repr(start), end=repr(end),
                         step=repr(step))["result"]  # type: ignore[index]

    def series_names(self, match: str) -> set[str]:
        data = self._get("/api/v1/label/__name__/values", **{"match[]": match})
        return set(data)  # type: ignore[arg-type]

    def wait_for(self, promql: str, timeout: float = 60.0) -> list:
        """The first non-empty answer to ``promql`` (the server may not
        listen yet, or not have scraped yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.query(promql)
            except OSError:
                result = []  # not listening yet
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never answered {promql}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
