"""A default start loads only what it uses, and an idle /metrics listener
sleeps (issue 13, items 3 and 4; docs/benchmarks.md "Start-up").

Timing goals live in bench/bench_start.py; these hold the structure that
makes them reachable: what a start without [sampling], [bmc] targets or
[tls] must not import, and a listener that never wakes with nobody scraping.
"""
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agent.exposition import MetricsServer
from agent.telemetry.store import SeriesStore

ROOT = Path(__file__).parent.parent

# What each costs a start, measured with -X importtime (docs/benchmarks.md).
NOT_AT_START = {
    "pyroute2": "netlink: the first collection or [sampling] loads it",
    "cryptography": "only with [tls] or a BMC",
    "pyghmi": "only with [[bmc.targets]]",
    "http.server": "at the first /metrics connection",
    "agent.flows.sampler": "only with [sampling]",
    "agent.api.operations_service": "at the first Operations call",
}


def test_a_default_start_loads_no_feature_it_does_not_use(tmp_path):
    # The modules loaded when the agent answers SERVING: Scheduler.start is
    # the step right after it (collection starts once the API answers).
    code = f"""
import sys
from agent.daemon import Agent, load_agent_config
from agent.telemetry.scheduler import Scheduler
seen = set()
Scheduler.start = lambda self: seen.update(sys.modules)
agent = Agent(load_agent_config(None, {{"server.grpc_socket": "{tmp_path}/s",
                                        "state_dir": "{tmp_path}/state",
                                        "server.metrics_listen": "127.0.0.1:0"}}))
try:
    agent.start()
finally:
    agent.stop()
print(" ".join(sorted(seen)))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(out.stdout.split())
    assert "agent.daemon" in loaded and "grpc" in loaded
    for module, why in NOT_AT_START.items():
        assert module not in loaded, f"a default start imports {module} ({why})"


def _wakes(native_id: int) -> int:
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("voluntary_ctxt_switches")))


def test_the_metrics_listener_sleeps_until_a_scraper_comes_and_stops_at_once():
    server = MetricsServer("127.0.0.1", 0, SeriesStore(retention=60))
    thread = server._thread
    try:
        time.sleep(0.2)  # its thread is in select by now
        before = _wakes(thread.native_id)
        time.sleep(1.2)  # socketserver's serve_forever woke every 0.5 s
        assert _wakes(thread.native_id) == before, "the /metrics listener woke with nobody scraping"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
    finally:
        t0 = time.monotonic()
        server.close()
        server.close()  # twice is harmless (stop paths may overlap)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0
