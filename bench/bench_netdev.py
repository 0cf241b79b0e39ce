"""Full collection of every counter of every interface, side by side:
the agent's netdev collector (dump -> Cython parse -> rates -> store) against
`ip -s -j link show`, pyroute2 `get_links()` and node_exporter's netdev
scrape (Debian's prometheus-node-exporter, run inside the namespace on
loopback, when installed).

    sudo .venv/bin/python bench/bench_netdev.py [--sizes 16 256 1024 4096] [--runs 15]

Needs root (it makes a throwaway network namespace of veth pairs and deletes
it).  Wall and CPU time are medians per full collection.  Targets (issue #4)
at 4096: <= 0.2x the wall time of `ip -s -j link show`, >= 50x less CPU than
node_exporter's netdev scrape, whole agent cycle <= 10 ms.
"""
from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent import core  # noqa: E402
from agent.telemetry.collector import CollectorContext  # noqa: E402
from agent.collectors.netdev import NetdevCollector  # noqa: E402
from agent.telemetry.model import Batch  # noqa: E402
from agent.telemetry.store import SeriesStore  # noqa: E402


def timed(fn, runs: int) -> tuple[float, float]:
    """Median wall and CPU (this process and its children) in ms."""
    walls, cpus = [], []
    for _ in range(runs):
        r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1000)
        r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(1000 * sum(getattr(b, f) - getattr(a, f) for a, b in ((r0, r1), (c0, c1))
                               for f in ("ru_utime", "ru_stime")))
    return statistics.median(walls), statistics.median(cpus)


def proc_cpu_ms(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def node_exporter(ns: str, runs: int) -> tuple[float, float] | None:
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["ip", "netns", "exec", ns, exe, "--collector.disable-defaults",
                             "--collector.netdev", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                subprocess.run(["ip", "netns", "exec", ns, "curl", "-sf", "-o", "/dev/null", url], check=True)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        walls, cpus = [], []
        for _ in range(runs):
            c0, t0 = proc_cpu_ms(proc.pid), time.perf_counter()
            subprocess.run(["ip", "netns", "exec", ns, "curl", "-sf", "-o", "/dev/null", url], check=True)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append(proc_cpu_ms(proc.pid) - c0)
        return statistics.median(walls), statistics.median(cpus)
    finally:
        proc.terminate()
        proc.wait(5)


def bench(n: int, runs: int) -> dict:
    ns = f"hostagent-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        batch = "".join(f"link add b{i} type veth peer name p{i}\n" for i in range(n // 2))
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
        collector = NetdevCollector(CollectorContext(options={"namespaces": (ns,)}))
        store = SeriesStore(retention=900)
        store.configure("netdev", 1.0)

        def cycle():
            b = Batch()
            collector.collect(b)
            store.ingest("netdev", b)

        cycle()
        out = {"agent": timed(cycle, runs)}
        dumper = collector._spaces[0].dumper
        out["agent_parse"] = timed(lambda: core.parse_stats_dump(dumper.dump()), runs)
        out["ip"] = timed(lambda: subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show"],
                                                 capture_output=True, check=True), runs)
        from pyroute2 import NetNS
        with NetNS(ns) as nl:
            out["pyroute2"] = timed(lambda: list(nl.get_links()), max(3, runs // 5))
        ne = node_exporter(ns, runs)
        if ne:
            out["node_exporter"] = ne
        out["series"] = store.series_count()
        collector.close()
        return out
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[16, 256, 1024, 4096])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"netlink parser: {core.NETLINK_IMPLEMENTATION}, kernels: {core.IMPLEMENTATION}; "
          f"{os.cpu_count()} CPUs; median of {args.runs}; ms (wall / CPU)")
    print(f"{'ifaces':>6} {'series':>7} {'agent cycle':>13} {'dump+parse':>12} {'ip -s -j':>13} "
          f"{'pyroute2':>15} {'node_exporter':>15} {'wall vs ip':>10} {'CPU vs n_e':>10}")
    for n in args.sizes:
        r = bench(n, args.runs)
        fmt = lambda k: f"{r[k][0]:.1f}/{r[k][1]:.1f}" if k in r else "-"  # noqa: E731
        vs_ip = r["ip"][0] / r["agent"][0]
        vs_ne = (r["node_exporter"][1] / r["agent"][1]) if "node_exporter" in r and r["agent"][1] else 0
        print(f"{n:>6} {r['series']:>7} {fmt('agent'):>13} {fmt('agent_parse'):>12} {fmt('ip'):>13} "
              f"{fmt('pyroute2'):>15} {fmt('node_exporter'):>15} {1 / vs_ip:>9.2f}x "
              f"{(f'{vs_ne:.0f}x less' if vs_ne else '-'):>10}")


if __name__ == "__main__":
    main()
