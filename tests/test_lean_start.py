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
    # Issue 13 item 4, second pass: the GPU backend loads where NVML is first
    # opened (the gpu collector's first run, after SERVING).
    "pynvml": "at the first NVML open",
    "agent.backends.nvml": "at the first NVML open",
    "agent.backends.nvml_model": "at the first NVML open",
    # The features' servicers are built at their first call (agent.features.lazy).
    "agent.api.gpu_service": "at the first Gpu call",
    "agent.api.gpu_convert": "at the first Gpu call or GetInventory",
    "agent.api.bmc_service": "at the first Bmc call",
    "agent.api.network_service": "at the first Network call",
    "agent.api.flows_service": "at the first Flows call",
    "agent.network.engine": "only with something to recover, else at its first use",
    "agent.cli.client": "serve imports no client command",
    "agent.cli.telemetry": "serve imports no client command",
}


def test_a_default_start_loads_no_feature_it_does_not_use(tmp_path):
    # The modules loaded when the agent answers SERVING: Scheduler.start is
    # the step right after it (collection starts once the API answers).
    code = f"""
import sys
import threading
from agent.daemon import Agent, load_agent_config
from agent.telemetry.scheduler import Scheduler
seen, threads = set(), set()
Scheduler.start = lambda self: (seen.update(sys.modules),
                                threads.update(t.name for t in threading.enumerate()))
agent = Agent(load_agent_config(None, {{"server.grpc_socket": "{tmp_path}/s",
                                        "server.grpc_listen": "127.0.0.1:0",
                                        "state_dir": "{tmp_path}/state",
                                        "server.metrics_listen": "127.0.0.1:0"}}))
try:
    agent.start()
finally:
    agent.stop()
print(" ".join(sorted(seen)))
print(" ".join(sorted(threads)))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    modules, threads = out.stdout.splitlines()
    loaded = set(modules.split())
    assert "agent.daemon" in loaded and "grpc" in loaded
    for module, why in NOT_AT_START.items():
        assert module not in loaded, f"a default start imports {module} ({why})"
    # Each collector's worker starts at its first run, after SERVING: a start
    # no longer waits for thirty-odd Thread.start calls before it serves.
    assert not [t for t in threads.split() if t.startswith("collector-")], threads


def test_the_cli_imports_only_the_command_it_runs():
    # `hostagent --help` lists every command without importing one (nor grpc);
    # `serve` parses its flags without the client commands' modules.
    code = """
import sys
from agent.cli import build_parser, command_of
argv = sys.argv[1:]
try:
    build_parser(command_of(argv)).parse_args(argv)
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""
    def loaded(*argv: str) -> set[str]:
        out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        return set(out.stdout.split())

    help_ = loaded("--help")
    assert not {m for m in help_ if m.split(".")[0] in ("grpc", "google")}, "--help imports grpc"
    assert not {m for m in help_ if m.startswith("agent.cli.") and m not in (
        "agent.cli.commands", "agent.cli.exits")}
    serve = loaded("serve", "--state-dir", "/nonexistent")
    assert "agent.cli.admin" in serve
    assert not {"agent.cli.client", "agent.cli.telemetry", "agent.cli.bmc", "agent.cli.gpu",
                "agent.cli.network", "agent.cli.flows", "grpc"} & serve
    metrics = loaded("metrics", "--help")
    assert "agent.cli.telemetry" in metrics and "agent.cli.bmc" not in metrics


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
