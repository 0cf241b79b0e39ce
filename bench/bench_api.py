"""Agent RSS with N series (history full at default retention) and GetMetrics
latency on loopback, the client in its own process as a control plane is.

    .venv/bin/python bench/bench_api.py [--calls 1000]

Targets (issue #2): GetMetrics p99 <= 5 ms at 1k series; RSS <= 100 MB at 10k.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent.gen.hostagent.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc  # noqa: E402


def measure(series: int, calls: int) -> dict:
    child = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "synthetic_agent.py"),
                              "--series", str(series)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    info = json.loads(child.stdout.readline())
    out = {"series": info["series"], "rss_mb": info["rss"] / 2**20}
    with grpc.insecure_channel(info["grpc"]) as ch:
        stub = telemetry_pb2_grpc.TelemetryStub(ch)
        for label, req in (("snapshot", pb.GetMetricsRequest(selector=pb.MetricSelector(names=["synthetic_*"]))),
                           ("window5m", pb.GetMetricsRequest(selector=pb.MetricSelector(names=["synthetic_*"])))):
            if label == "window5m":
                req.window.seconds = 300
            for _ in range(20):
                stub.GetMetrics(req, timeout=10)
            lat = []
            for _ in range(calls):
                t0 = time.perf_counter()
                resp = stub.GetMetrics(req, timeout=10)
                lat.append((time.perf_counter() - t0) * 1000)
            lat.sort()
            got = sum(len(f.samples) for f in resp.families)
            out[label] = (statistics.median(lat), lat[int(0.99 * (len(lat) - 1))], got)
    child.stdin.close()
    child.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--series", type=int, nargs="*", default=[1000, 10000])
    args = parser.parse_args()
    import agent.core
    print(f"kernels: {agent.core.IMPLEMENTATION}; {os.cpu_count()} CPUs; {args.calls} calls per row")
    print(f"{'series':>7} {'RSS MB':>7} {'GetMetrics p50 ms':>18} {'p99 ms':>7} "
          f"{'with 5m window p50':>19} {'p99 ms':>7}")
    for n in args.series:
        r = measure(n, args.calls if n <= 1000 else max(50, args.calls // 10))
        (p50, p99, _), (w50, w99, _) = r["snapshot"], r["window5m"]
        print(f"{r['series']:>7} {r['rss_mb']:>7.1f} {p50:>18.2f} {p99:>7.2f} {w50:>19.2f} {w99:>7.2f}")


if __name__ == "__main__":
    main()
