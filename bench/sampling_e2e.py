"""End-to-end sampling cost (issue 14, benchmark part (b)): a traffic
generator at its maximum rate through a veth between two namespaces this
script creates, and, one after the other on the same interface at the same
1-in-N rate, the agent's sampler, pmacctd and softflowd (Debian packages
``pmacct``, ``softflowd``: bootstrap.sh bench).  For each: packets sent,
samples processed per second, ring (or pcap) drops, and CPU seconds of the
capturing process per thousand samples.

The generator is the kernel's ``pktgen`` when the module exists, else a
raw-socket sender (one process, pre-built frames of ``--flows`` UDP flows).
The agent's sampler runs alone in a child process (the real backend, flow
kernel and hub; no other collector), so its CPU is its own.  The BPF filter
runs in the sender's context for all three; only the agent's keeps 1 in N
in the kernel (pmacctd and softflowd get every packet through libpcap and
sample in user space, or, for softflowd, after its own per-packet work).

    python bench/sampling_e2e.py --quick           # under a minute
    python bench/bench_sampling.py --e2e           # (a) and (b) together

Needs root (namespaces, raw sockets).  Nothing outside its namespaces is
touched.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

A_IP, B_IP = "10.78.0.1", "10.78.0.2"


def ip(*args: str, ns: str | None = None) -> str:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _frames(flows: int, size: int) -> list[bytes]:
    """UDP frames A -> B, ``flows`` source ports, ``size`` bytes each on the wire."""
    out = []
    payload = b"\x5a" * (size - 42)
    for i in range(flows):
        udp = struct.pack("!HHHH", 10000 + i, 9, 8 + len(payload), 0) + payload
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                          socket.inet_aton(A_IP), socket.inet_aton(B_IP))
        out.append(b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + iph + udp)
    return out


def _sender(ns: str, duration: float, flows: int, size: int, result) -> None:
    from agent.backends.netns import call_in_netns
    sock = call_in_netns(ns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    sock.bind(("va", 0))
    frames = _frames(flows, size)
    n, send, end = 0, sock.send, time.monotonic() + duration
    while time.monotonic() < end:
        for f in frames:
            try:
                send(f)
            except OSError:  # the qdisc is full: try again
                continue
        n += len(frames)
    sock.close()
    result.value = n


def generate(ns: str, duration: float, flows: int, size: int) -> int:
    """Packets sent by a raw-socket sender process in ``ns`` for ``duration``."""
    result = mp.Value("q", 0)
    proc = mp.Process(target=_sender, args=(ns, duration, flows, size, result))
    proc.start()
    proc.join(duration + 30)
    return result.value


def _cpu(pid: int) -> float:
    """CPU seconds of a process's live threads, from the scheduler's
    nanosecond accounting (``/proc/PID/task/*/schedstat``; utime/stime
    count 10 ms ticks, too coarse for a few seconds of sampling)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue
    return total / 1e9


def _agent_sampler(ns: str, rate: int, duration: float, conn) -> None:
    from agent import core
    from agent.flows.config import SamplingConfig
    from agent.flows.hub import FlowHub
    from agent.flows.sampler import Sampler
    cfg = SamplingConfig(interfaces=("va",), namespace=ns, rate=rate, libvirt_dir="")
    sampler = Sampler(cfg, FlowHub(8192), core.FlowTable(8192), core.parse_frame)
    sampler.start()
    conn.send("ready")
    conn.recv()  # traffic done
    time.sleep(0.5)
    [state] = sampler.hub.interfaces() or [None]
    conn.send({"samples": state.samples if state else 0, "drops": state.drops if state else 0,
               "kernel": core.FLOWS_IMPLEMENTATION})
    conn.recv()  # measured
    sampler.close()


def measure_agent(ns: str, rate: int, duration: float, flows: int, size: int) -> dict:
    parent, child = mp.Pipe()
    proc = mp.Process(target=_agent_sampler, args=(ns, rate, duration, child))
    proc.start()
    parent.recv()
    cpu0 = _cpu(proc.pid)
    sent = generate(ns, duration, flows, size)
    parent.send("done")
    out = parent.recv()
    out["cpu_s"] = _cpu(proc.pid) - cpu0  # the traffic's share, not start-up
    parent.send("bye")
    proc.join(10)
    out["sent"] = sent
    return out


def measure_tool(name: str, cmd: list[str], ns: str, duration: float, flows: int, size: int,
                 rate: int) -> dict:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.5)  # capture open
        if proc.poll() is not None:
            return {"error": f"{name} exited with {proc.returncode}"}
        pids = [int(p) for p in subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
        cpu0 = sum(_cpu(p) for p in pids)
        sent = generate(ns, duration, flows, size)
        time.sleep(0.5)
        cpu = sum(_cpu(p) for p in pids if Path(f"/proc/{p}").exists()) - cpu0
        return {"sent": sent, "samples": sent // rate, "cpu_s": cpu, "drops": None}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(5)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="5 s per run (under a minute in all)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of traffic per run")
    p.add_argument("--rate", type=int, default=100, help="sampling: 1 in N")
    p.add_argument("--flows", type=int, default=256)
    p.add_argument("--size", type=int, default=128, help="frame bytes")


def run(args: argparse.Namespace) -> dict:
    """Every measurement, printed and returned (by tool)."""
    duration = 5.0 if getattr(args, "quick", False) else getattr(args, "duration", 20.0)
    rate, flows, size = getattr(args, "rate", 100), getattr(args, "flows", 256), getattr(args, "size", 128)
    ns = f"hostagent-bench-{os.getpid()}"
    results: dict[str, dict] = {}
    tmp = tempfile.mkdtemp(prefix="sampling-e2e-")
    ip("netns", "add", ns)
    try:
        peer = ns + "-b"
        ip("netns", "add", peer)
        try:
            ip("link", "add", "va", "type", "veth", "peer", "name", "vb", ns=ns)
            ip("link", "set", "vb", "netns", peer, ns=ns)
            ip("link", "set", "va", "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)  # softflowd's export goes to 127.0.0.1 there
            ip("link", "set", "vb", "up", ns=peer)
            results["hostagent"] = measure_agent(ns, rate, duration, flows, size)
            if shutil.which("pmacctd"):
                conf = Path(tmp) / "pmacctd.conf"
                conf.write_text(f"daemonize: false\npcap_interface: va\nsampling_rate: {rate}\n"
                                f"aggregate: src_host,dst_host,src_port,dst_port,proto\nplugins: print\n"
                                f"print_output_file: {tmp}/pmacctd.out\nprint_refresh_time: 60\n"
                                f"snaplen: 128\n")
                results["pmacctd"] = measure_tool("pmacctd", ["pmacctd", "-f", str(conf)], ns, duration,
                                                  flows, size, rate)
            if shutil.which("softflowd"):
                results["softflowd"] = measure_tool(
                    "softflowd", ["softflowd", "-d", "-i", "va", "-s", str(rate), "-C", "128",
                                  "-n", "127.0.0.1:9995", "-p", f"{tmp}/sf.pid", "-c", f"{tmp}/sf.ctl"],
                    ns, duration, flows, size, rate)
        finally:
            subprocess.run(["ip", "netns", "del", peer], capture_output=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for name, r in results.items():
        if "error" in r:
            print(f"{name:10s} {r['error']}")
            continue
        per_k = r["cpu_s"] / max(1, r["samples"]) * 1000
        r["cpu_ms_per_1k_samples"] = round(per_k * 1000, 3)
        r["pps"] = round(r["sent"] / duration)
        r["samples_per_s"] = round(r["samples"] / duration)
        print(f"{name:10s} sent {r['pps']:>9,} pkt/s  1:{rate}  samples {r['samples_per_s']:>7,}/s  "
              f"drops {r['drops'] if r['drops'] is not None else '-':>5}  cpu {r['cpu_s']:.3f} s  "
              f"= {r['cpu_ms_per_1k_samples']:.3f} ms per 1000 samples"
              + (f"  (flow kernel: {r['kernel']})" if "kernel" in r else ""))
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
