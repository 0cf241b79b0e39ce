"""A real agent (daemon, store, gRPC server) with one synthetic collector of N
series and its history full at the default retention; prints its gRPC
address and RSS as one JSON line, then serves until stdin closes.  Used by
bench_api.py; not a test."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import psutil

from agent.daemon import Agent
from agent.features import load_agent_config
from agent.logs import setup_logging
from agent.telemetry.model import Batch, FamilyDesc, MetricType
from agent.telemetry.store import history_slots

BYTES = FamilyDesc("synthetic_bytes_total", MetricType.COUNTER, "synthetic counter", "bytes", ("dev", "dir"))
TEMP = FamilyDesc("synthetic_temp_celsius", MetricType.GAUGE, "synthetic gauge", "celsius", ("dev",))


class Synthetic:
    name = "synthetic"

    def __init__(self, n: int) -> None:
        self.n, self.tick = n, 0
        self.labels = [(f"tap{i // 2}", "rx" if i % 2 else "tx") for i in range(n)]

    def collect(self, batch: Batch) -> None:
        self.tick += 1
        for i, (dev, direction) in enumerate(self.labels):
            if i % 5 == 4:
                batch.gauge(TEMP, 40.0 + (i + self.tick) % 20, f"{dev}-{direction}")
            else:
                batch.counter(BYTES, self.tick * (1000 + i), dev, direction)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="hostagent-bench-")
    cfg = load_agent_config(None, overrides={
        "server.grpc_listen": "127.0.0.1:0", "server.metrics_listen": "",
        "server.grpc_socket": f"{tmp}/grpc.sock", "state_dir": f"{tmp}/state", "log.level": "warning"})
    setup_logging("warning")
    agent = Agent(cfg)
    agent.start()
    synthetic = Synthetic(args.series)
    interval = cfg.telemetry.interval
    slots = history_slots(cfg.telemetry.retention, interval)
    agent.store.configure("synthetic", interval)
    now = time.monotonic()
    for k in range(slots):  # a full default retention of history
        batch = Batch()
        synthetic.collect(batch)
        agent.store.ingest("synthetic", batch, mono=now - (slots - k) * interval)
    tcp = next(a for a in agent.grpc.addresses if not a.startswith("unix:"))
    print(json.dumps({"grpc": tcp, "rss": psutil.Process().memory_info().rss,
                      "series": agent.store.series_count(), "slots": slots}), flush=True)
    sys.stdin.read()
    agent.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
