"""Start-up of the agent against node_exporter: spawn -> answering (issue 13).

    .venv/bin/python bench/bench_start.py [--runs 7] [--quick] [--ifaces 4096]

Per run, each process is spawned fresh and polled every 5 ms:

- agent (``python -m agent serve``, default config, its own state directory
  and unix socket): time to the gRPC health check answering SERVING over
  the unix socket (the target: <= 0.3 s), the CPU it used until then
  (utime + stime from /proc/PID/stat), and the time to its first
  successful /metrics scrape;
- node_exporter (Debian's prometheus-node-exporter, default flags): time
  to its first successful scrape.

Then the agent's log is checked for ``collector.failed`` (none on a healthy
start).  Python's bytecode cache is warmed first, in a directory of its own
(PYTHONPYCACHEPREFIX), as an installed agent has its .pyc files.

``--ifaces N`` also starts the agent in a throwaway network namespace of N
interfaces (veth pairs) (needs root) and reports its first netdev cycle: its
duration from its ``collector.slow_start`` log line (a first run longer than the
collector's timeout, inside the start-up allowance) and whether any
collector failed.

Prints median (min-max) of ``--runs``.  Wall times on a busy machine are
noisy; the CPU column is the steadier figure.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.005


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def scrape_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            resp.read()
            return resp.status == 200
    except OSError:
        return False


def agent_env(pycache: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def agent_cmd(tmp: Path, metrics_port: int) -> list[str]:
    return [sys.executable, "-m", "agent", "serve", "--grpc-socket", str(tmp / "agent.sock"),
            "--state-dir", str(tmp / "state"), "--metrics-listen", f"127.0.0.1:{metrics_port}"]


def serving(sock: Path) -> bool:
    if not sock.exists():
        return False
    with grpc.insecure_channel(f"unix:{sock}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=1.0)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def start_agent(pycache: str, prefix: list[str] = (), timeout: float = 30.0) -> dict[str, float]:
    """One start: seconds to SERVING, CPU seconds until then, seconds to
    the first scrape (NaN inside a namespace), collector.failed lines."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_start."))
    port = free_port()
    log = open(tmp / "log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([*prefix, *agent_cmd(tmp, port)], cwd=ROOT, env=agent_env(pycache),
                            stdout=log, stderr=subprocess.STDOUT)
    out = {"serving": float("nan"), "cpu": float("nan"), "scrape": float("nan")}
    try:
        while not serving(tmp / "agent.sock"):
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"agent never served: {(tmp / 'log').read_text()[-2000:]}")
            time.sleep(POLL)
        out["serving"] = time.monotonic() - t0
        out["cpu"] = cpu_seconds(proc.pid)
        if not prefix:  # inside a namespace its loopback is not ours
            while not scrape_ok(f"http://127.0.0.1:{port}/metrics"):
                time.sleep(POLL)
            out["scrape"] = time.monotonic() - t0
        time.sleep(12.0 if prefix else 1.0)  # the first cycle of every collector (4.5 s under load)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        text = (tmp / "log").read_text()
        out["failed"] = text.count("event=collector.failed")
        out["netdev"] = slow_starts(text).get("netdev", float("nan"))
        if out["failed"]:
            print("\n".join(line for line in text.splitlines() if "collector.failed" in line),
                  file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def slow_starts(log: str) -> dict[str, float]:
    """Collectors whose first run overran their timeout but not the start-up
    allowance (the scheduler's ``collector.slow_start`` line): name -> seconds."""
    out = {}
    for line in log.splitlines():
        if "event=collector.slow_start" in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            out[fields.get("collector", "?")] = float(fields.get("seconds", "nan"))
    return out


def start_node_exporter(exe: str) -> float:
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not scrape_ok(f"http://127.0.0.1:{port}/metrics"):
            if proc.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError("node_exporter never answered")
            time.sleep(POLL)
        return time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(10)


def fmt(values: list[float], unit: str = "s") -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return f"{statistics.median(values):.3f}{unit} ({min(values):.3f}-{max(values):.3f})"


def with_dummies(count: int):
    """A namespace holding ``count`` interfaces; yields its name."""
    name = f"hostagent-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # veth pairs (the dummy driver is not in every kernel), as bench_netdev.py
        batch = "link set lo up\n" + "".join(f"link add b{i} type veth peer name p{i}\n"
                                             for i in range(count // 2))
        subprocess.run(["ip", "-n", name, "-batch", "-"], input=batch, text=True, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 runs, no namespace (under a minute)")
    ap.add_argument("--ifaces", type=int, default=0,
                    help="also start in a namespace of this many interfaces (root)")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs
    pycache = tempfile.mkdtemp(prefix="bench_start.pyc.")
    try:
        start_agent(pycache)  # warms the bytecode cache; not counted
        agent = [start_agent(pycache) for _ in range(runs)]
        exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        ne = [start_node_exporter(exe) for _ in range(runs)] if exe else []
        print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; median (min-max) of {runs} starts")
        print(f"agent: gRPC SERVING after {fmt([a['serving'] for a in agent])} (target <= 0.3 s), "
              f"CPU until then {fmt([a['cpu'] for a in agent])}, first scrape after "
              f"{fmt([a['scrape'] for a in agent])}, collector.failed lines: "
              f"{sum(a['failed'] for a in agent)}")
        if ne:
            print(f"node_exporter: first scrape after {fmt(ne)}")
        if args.ifaces and not args.quick:
            gen = with_dummies(args.ifaces)
            ns = next(gen)
            try:
                big = [start_agent(pycache, ["ip", "netns", "exec", ns], timeout=60)
                       for _ in range(min(runs, 3))]
            finally:
                gen.close()
            print(f"agent in a namespace of {args.ifaces} interfaces: SERVING after "
                  f"{fmt([a['serving'] for a in big])}, first netdev run over its timeout: "
                  f"{fmt([a['netdev'] for a in big])} (- if none), collector.failed lines: "
                  f"{sum(a['failed'] for a in big)}")
    finally:
        shutil.rmtree(pycache, ignore_errors=True)


if __name__ == "__main__":
    main()
