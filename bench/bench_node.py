"""Whole-process CPU of the agent against node_exporter, both with their
default collectors, scraped alike, over the same window (issue 12).

    .venv/bin/python bench/bench_node.py [--runs 3] [--window-15s 120] [--window-1s 30]
    .venv/bin/python bench/bench_node.py --quick     # under a minute, noisier

Starts Debian's node_exporter (prometheus-node-exporter, default flags) and
the agent (``python -m agent serve``, default config: 5 s collection, gRPC on
loopback) on free loopback ports.  One scraper thread scrapes both at the
same instants, as Prometheus would (``Accept-Encoding: gzip``, the scrape
timeout header); CPU is utime + stime of each whole process from
/proc/PID/stat, taken at the start and end of each window, after a warm-up.
Scenarios: 15 s scrape with the agent at its default interval; 15 s scrape
with the agent's interval at 15 s (``[telemetry] interval``); 1 s scrape.
Prints, per scenario, the median (min-max) over ``--runs`` windows of each
process' CPU in % of one core and the agent/node_exporter ratio; then the
agent's collectors alone (their runs' thread CPU, which the agent exports as
``hostagent_collector_cpu_seconds_total``, between the window's first and
last scrape) against node_exporter's whole process.  Targets
(docs/benchmarks.md): at 15 s <= 0.5x node_exporter, at 1 s <= 1x.

``--ifaces N`` runs everything inside a throwaway network namespace holding
N interfaces (veth pairs, as bench_netdev.py; root): the hypervisor case of
issue 13, where netdev and netclass dominate.  Each window also records both
processes' resident memory (VmRSS at its end) and their peak (VmHWM).

``--quick`` runs the 15 s scenario for one 30 s window (two scrapes) and the
1 s scenario for two 8 s windows, and leaves out the 15 s-interval one:
a smoke check of the ratios, not a figure for the docs.  Start-up is
measured by bench/bench_start.py.
"""
from __future__ import annotations

import argparse
import ctypes
import gzip
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def enter_namespace(count: int) -> str:
    """Make a namespace of ``count`` interfaces and move this process into
    it, so the exporters and the scraper (started after, so inheriting it)
    see those interfaces and talk over its loopback.  Returns its name."""
    name = f"hostagent-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    batch = "link set lo up\n" + "".join(f"link add b{i} type veth peer name p{i}\n"
                                         for i in range(count // 2))
    subprocess.run(["ip", "-n", name, "-batch", "-"], input=batch, text=True, check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as ns:
        if libc.setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")
    return name


def scrape(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={
        "Accept-Encoding": "gzip", "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"})
    with urllib.request.urlopen(req, timeout=timeout + 5) as resp:
        return resp.read()


def collectors_cpu(body: bytes) -> float:
    """The agent's own account of its collectors' CPU: the sum of
    ``hostagent_collector_cpu_seconds_total`` in a (gzip) scrape."""
    total = 0.0
    for line in gzip.decompress(body).splitlines():
        if line.startswith(b"hostagent_collector_cpu_seconds_total{"):
            total += float(line.rsplit(b" ", 1)[1])
    return total


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            scrape(url, 10)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered")
            time.sleep(0.2)


class Exporters:
    """node_exporter and the agent, started fresh per scenario."""

    def __init__(self, agent_interval: str | None) -> None:
        exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        if exe is None:
            sys.exit("node_exporter not installed: scripts/bootstrap.sh bench")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_node."))
        ne_port, ag_port = free_port(), free_port()
        self.ne = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{ne_port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd = [sys.executable, "-m", "agent", "serve", "--grpc-listen", "127.0.0.1:0",
               "--metrics-listen", f"127.0.0.1:{ag_port}", "--grpc-socket", str(self.tmp / "s"),
               "--state-dir", str(self.tmp / "state")]
        if agent_interval:
            (self.tmp / "agent.toml").write_text(f'[telemetry]\ninterval = "{agent_interval}"\n')
            cmd += ["--config", str(self.tmp / "agent.toml")]
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.agent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.urls = {"node_exporter": f"http://127.0.0.1:{ne_port}/metrics",
                     "agent": f"http://127.0.0.1:{ag_port}/metrics"}
        wait_http(self.urls["node_exporter"], self.ne)
        wait_http(self.urls["agent"], self.agent)
        self.pids = {"node_exporter": self.ne.pid, "agent": self.agent.pid}

    def close(self) -> None:
        for proc in (self.agent, self.ne):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def scenario(agent_interval: str | None, scrape_every: float, window: float, runs: int,
             warmup: float) -> dict[str, list[float]]:
    """CPU % of one core per window, for each process; ``NAME rss`` its
    VmRSS at each window's end and ``NAME peak`` its VmHWM, in MB."""
    ex = Exporters(agent_interval)
    stop = threading.Event()
    timeout = min(10.0, scrape_every)

    seen: list[tuple[float, float]] = []  # (time of a scrape, the agent's collectors' CPU in it)

    def scraper() -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            for name, url in ex.urls.items():
                try:
                    body = scrape(url, timeout)
                except OSError as exc:
                    print(f"scrape {url} failed: {exc}", file=sys.stderr)
                    continue
                if name == "agent":
                    seen.append((time.monotonic(), collectors_cpu(body)))
            next_at += scrape_every
            stop.wait(max(0.0, next_at - time.monotonic()))

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    out: dict[str, list[float]] = {key: [] for name in ex.pids
                                   for key in (name, f"{name} rss", f"{name} peak")}
    out["collectors"] = []
    try:
        time.sleep(warmup)
        for _ in range(runs):
            c0 = {n: cpu_seconds(p) for n, p in ex.pids.items()}
            t0 = time.monotonic()
            time.sleep(window)
            t1 = time.monotonic()
            dt = t1 - t0
            inside = [(t, c) for t, c in seen if t0 <= t <= t1]
            if len(inside) >= 2:  # the collectors' CPU between the window's first and last scrape
                (ta, ca), (tb, cb) = inside[0], inside[-1]
                out["collectors"].append(100 * (cb - ca) / (tb - ta))
            for n, p in ex.pids.items():
                out[n].append(100 * (cpu_seconds(p) - c0[n]) / dt)
                mem = memory_mb(p)
                out[f"{n} rss"].append(mem["VmRSS"])
                out[f"{n} peak"].append(mem["VmHWM"])
    finally:
        stop.set()
        thread.join(timeout + 6)
        ex.close()
    return out


def show(title: str, res: dict[str, list[float]], target: float) -> None:
    def fmt(v: list[float]) -> str:
        return f"{statistics.median(v):6.3f}% ({min(v):.3f}-{max(v):.3f})"
    ratios = [a / n if n else float("inf") for a, n in zip(res["agent"], res["node_exporter"])]
    verdict = "met" if statistics.median(ratios) <= target else "MISSED"
    print(f"{title:42} agent {fmt(res['agent'])}  node_exporter {fmt(res['node_exporter'])}  "
          f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
          f"target <= {target:g}: {verdict}", flush=True)
    if res["collectors"]:
        share = [c / n if n else float("inf") for c, n in zip(res["collectors"], res["node_exporter"])]
        print(f"{'':42} the agent's collectors alone (hostagent_collector_cpu_seconds_total): "
              f"{fmt(res['collectors'])}, ratio {statistics.median(share):.2f} "
              f"({min(share):.2f}-{max(share):.2f})", flush=True)
    print(f"{'':42} RSS MB at window end / peak: agent {statistics.median(res['agent rss']):.1f} / "
          f"{max(res['agent peak']):.1f}  node_exporter {statistics.median(res['node_exporter rss']):.1f} / "
          f"{max(res['node_exporter peak']):.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window-15s", type=float, default=120.0, help="seconds per 15 s-scrape window")
    ap.add_argument("--window-1s", type=float, default=30.0, help="seconds per 1 s-scrape window")
    ap.add_argument("--only", choices=("15s", "15s-interval", "1s"), action="append")
    ap.add_argument("--ifaces", type=int, default=0,
                    help="run in a throwaway namespace of this many interfaces (root)")
    ap.add_argument("--quick", action="store_true",
                    help="one 30 s window at 15 s, two 8 s windows at 1 s (under a minute)")
    args = ap.parse_args()
    only = set(args.only or ("15s", "15s-interval", "1s"))
    runs_15, window_15, warm_15 = args.runs, args.window_15s, 20.0
    runs_1, window_1, warm_1 = args.runs, args.window_1s, 5.0
    if args.quick:
        only.discard("15s-interval")
        runs_15, window_15, warm_15 = 1, 30.0, 2.0  # scrapes at 0, 15, 30: two in the window
        runs_1, window_1, warm_1 = 2, 8.0, 3.0
    netns = enter_namespace(args.ifaces) if args.ifaces else None
    try:
        run_scenarios(args, only, (runs_15, window_15, warm_15), (runs_1, window_1, warm_1))
    finally:
        if netns:
            subprocess.run(["ip", "netns", "del", netns], check=False)


def run_scenarios(args, only: set[str], at_15: tuple, at_1: tuple) -> None:
    (runs_15, window_15, warm_15), (runs_1, window_1, warm_1) = at_15, at_1
    where = f"a namespace of {args.ifaces} interfaces" if args.ifaces else "the host's namespace"
    print(f"{where}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; windows per scenario: "
          f"{runs_15} at 15 s, {runs_1} at 1 s", flush=True)
    if "15s" in only:
        show("15 s scrape, agent interval 5 s (default)",
             scenario(None, 15.0, window_15, runs_15, warm_15), 0.5)
    if "15s-interval" in only:
        show("15 s scrape, agent interval 15 s",
             scenario("15s", 15.0, window_15, runs_15, warm_15), 0.5)
    if "1s" in only:
        show("1 s scrape, agent interval 5 s (default)",
             scenario(None, 1.0, window_1, runs_1, warm_1), 1.0)


if __name__ == "__main__":
    main()
