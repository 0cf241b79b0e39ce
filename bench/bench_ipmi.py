"""One BMC collection cycle (N sensors, session already set up) against
OpenIPMI's ipmi_sim on loopback: the agent's poll against `ipmitool sdr`
(forked per cycle, as scripts do) and ipmi_exporter's scrape (Debian's
prometheus-ipmi-exporter + freeipmi-tools, when installed), plus pyghmi's
wake-up race with and without the agent's fix (agent.backends.ipmi_session).

    .venv/bin/python bench/bench_ipmi.py [--sizes 8 64] [--cycles 30] [--race-cycles 100]
                                         [--load-bmcs 4] [--load-cycles 25] [--json FILE]

Run from the repository root (the simulator is the test fixture
tests.ipmisim; `scripts/bootstrap.sh bench` installs openipmi, ipmitool,
prometheus-ipmi-exporter and freeipmi-tools).  Wall times are the median and
p90 of the cycles; CPU is the mean per cycle: this process's (all threads,
pyghmi's I/O thread included) for the agent, the child's rusage for
ipmitool, the exporter's and its waited-for FreeIPMI children's for
ipmi_exporter.  The simulator's own CPU counts for nobody.  The exporter is
run on a free loopback port with the config this file writes (see
EXPORTER_CONFIG: ipmi_sim needs FreeIPMI's `opensesspriv` workaround).
The race table also gives the CPU spent on one request a paused
ipmi_sim answers only after 300 ms: a wait must sleep, not spin.
Target (issue): an agent cycle at least 10x cheaper in CPU and wall time than
ipmi_exporter's scrape.  Informational, nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from agent.backends import ipmi_session  # noqa: E402
from agent.backends.ipmi import PyghmiBmc  # noqa: E402
from agent.backends.ipmi_session import SessionPolicy  # noqa: E402
from agent.bmc.config import BmcTargetConfig  # noqa: E402
from agent.bmc.guard import Guard  # noqa: E402
from agent.bmc.hub import BmcTarget  # noqa: E402
from agent.secrets import Secret  # noqa: E402
from tests.ipmisim import IpmiSim, ipmi_sim_available  # noqa: E402

EXPORTER = "/usr/bin/prometheus-ipmi-exporter"
# ipmi_sim answers Open Session with maximum privilege 0 when asked for "the
# highest" (what FreeIPMI asks by default): "privilege level cannot be
# obtained for this user" unless FreeIPMI sends the level itself
# (workaround opensesspriv).  Cipher suite 3 is FreeIPMI's default.
EXPORTER_CONFIG = """\
modules:
  default:
    user: {user}
    pass: {password}
    driver: LAN_2_0
    privilege: admin
    timeout: 10000
    workaround_flags: [opensesspriv]
    collectors: [ipmi, dcmi, chassis, sel, bmc]
"""
PAUSE = 0.3  # s: a slow BMC reply, for the wait's CPU cost
SLOW = 0.3  # s: a cycle slower than this stalled (a retransmit timer fired)
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[int(p * (len(s) - 1) + 0.5)]


def summary(walls: list[float], cpu_total_ms: float, sensors: int) -> dict:
    return {"wall_median_ms": statistics.median(walls), "wall_p90_ms": pct(walls, 0.9),
            "wall_max_ms": max(walls), "cpu_ms": cpu_total_ms / len(walls),
            "cycles": len(walls), "sensors": sensors}


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- hostagent --

def make_target(sim: IpmiSim, state_dir: str, name: str) -> BmcTarget:
    user, password = sim.ADMIN
    backend = PyghmiBmc(sim.host, sim.port, user, Secret(password.encode(), "bench"),
                        SessionPolicy((17, 3)))  # ipmi_sim has no suite 17: 3 is negotiated
    cfg = BmcTargetConfig(name=name, host=sim.host, port=sim.port, username=user,
                          password="bench", cipher_suites=(17, 3))
    return BmcTarget(cfg, backend, Guard(name, timeout=10.0), state_dir)


def agent_cycles(target: BmcTarget, fn, cycles: int) -> tuple[list[float], float, object]:
    """Per-cycle wall (ms), total process CPU (ms), last result."""
    walls, result = [], None
    c0 = time.process_time()
    for _ in range(cycles):
        t0 = time.perf_counter()
        result = fn()
        walls.append((time.perf_counter() - t0) * 1000)
    return walls, (time.process_time() - c0) * 1000, result


def hostagent(sim: IpmiSim, state_dir: str, cycles: int) -> dict:
    target = make_target(sim, state_dir, "bench")
    try:
        for _ in range(2):  # log in, read the SDR and the identity
            target.poll()
        out = {}
        walls, cpu, got = agent_cycles(target, lambda: target.call(lambda b: b.sensors()), cycles)
        out["sensors"] = summary(walls, cpu, len(got))
        walls, cpu, got = agent_cycles(target, target.poll, cycles)
        out["poll"] = summary(walls, cpu, len(got.sensors))
        out["poll"]["requests"] = got.requests
        out["poll"]["suite"] = target.backend.cipher_suite
        return out
    finally:
        target.close()


# ----------------------------------------------------------------- ipmitool --

def ipmitool(sim: IpmiSim, cycles: int) -> dict:
    user, password = sim.ADMIN
    cmd = ["ipmitool", "-I", "lanplus", "-H", sim.host, "-p", str(sim.port), "-U", user,
           "-P", password, "-C", "3", "-L", "ADMINISTRATOR", "sdr"]
    walls, cpu, lines = [], 0.0, 0
    for i in range(cycles + 1):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = (time.perf_counter() - t0) * 1000
        proc.stdout.close()
        if proc.returncode != 0:
            raise RuntimeError(f"ipmitool sdr failed (rc {proc.returncode})")
        lines = len(out.splitlines())
        if i:  # the first run is a warm-up (page cache, ARP-free loopback anyway)
            walls.append(wall)
            cpu += (ru.ru_utime + ru.ru_stime) * 1000
    return summary(walls, cpu, lines)


# ------------------------------------------------------------ ipmi_exporter --

def proc_tree_cpu_ms(pid: int) -> float:
    """utime+stime of pid plus cutime+cstime (its waited-for children)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * TICK_MS


class Exporter:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_tcp_port()
        user, password = IpmiSim.ADMIN
        self.config = workdir / "ipmi_exporter.yml"
        self.config.write_text(EXPORTER_CONFIG.format(user=user, password=password))
        self.log = workdir / "ipmi_exporter.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Exporter":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [EXPORTER, f"--config.file={self.config}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"ipmi_exporter exited: {self.log.read_text()[-500:]}")
                time.sleep(0.05)
        raise RuntimeError("ipmi_exporter did not start listening")

    def scrape(self, sim: IpmiSim) -> str:
        url = (f"http://127.0.0.1:{self.port}/ipmi?target={sim.host}:{sim.port}"
               f"&module=default")
        return urllib.request.urlopen(url, timeout=60).read().decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def exporter_cycles(exp: Exporter, sim: IpmiSim, cycles: int) -> tuple[dict, list[str]]:
    text = exp.scrape(sim)  # warm-up
    lines = [ln for ln in text.splitlines() if ln.startswith("ipmi_")]
    down = [ln for ln in lines if ln.startswith("ipmi_up") and not ln.endswith(" 1")]
    if down:
        raise RuntimeError(f"ipmi_exporter collectors down: {down}")
    sensor_ids = {m.group(1) for ln in lines for m in [re.search(r'[{,]id="(\d+)"', ln)] if m}
    walls = []
    c0 = proc_tree_cpu_ms(exp.proc.pid)
    for _ in range(cycles):
        t0 = time.perf_counter()
        exp.scrape(sim)
        walls.append((time.perf_counter() - t0) * 1000)
    cpu = proc_tree_cpu_ms(exp.proc.pid) - c0
    sample = [ln for ln in lines if ln.startswith(("ipmi_temperature_celsius", "ipmi_up",
                                                   "ipmi_dcmi_power", "ipmi_chassis_power"))]
    return summary(walls, cpu, len(sensor_ids)), sample


# -------------------------------------------------------------- wake-up race --

def race(sims: list[IpmiSim], state_dir: str, cycles: int, fix: bool) -> dict:
    """`cycles` full polls of every sim, one thread per sim, all at once; the
    per-cycle wall times of all of them together."""
    targets = [make_target(s, state_dir, f"race{i}") for i, s in enumerate(sims)]
    if not fix:
        ipmi_session.uninstall_wait_fix()  # PyghmiBmc() installed it
    try:
        for t in targets:
            t.poll()
            t.poll()
        walls: list[float] = []
        lock, barrier = threading.Lock(), threading.Barrier(len(targets))
        errors: list[BaseException] = []

        def run(t: BmcTarget) -> None:
            mine = []
            try:
                barrier.wait()
                for _ in range(cycles):
                    t0 = time.perf_counter()
                    t.poll()
                    mine.append((time.perf_counter() - t0) * 1000)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            with lock:
                walls.extend(mine)

        threads = [threading.Thread(target=run, args=(t,)) for t in targets]
        c0, t0 = time.process_time(), time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed, cpu = time.perf_counter() - t0, (time.process_time() - c0) * 1000
        if errors:
            raise errors[0]
        out = {"bmcs": len(sims), "fix": fix, "cycles": len(walls),
               "median_ms": statistics.median(walls), "p99_ms": pct(walls, 0.99),
               "max_ms": max(walls), "slow": sum(w > SLOW * 1000 for w in walls),
               "cpu_ms": cpu / len(walls), "seconds": elapsed}
        if len(sims) == 1:
            out["paused_wait_cpu_ms"] = statistics.median(
                paused_wait_cpu(sims[0], targets[0]) for _ in range(3))
        return out
    finally:
        ipmi_session.install_wait_fix()
        for t in targets:
            t.close()


def paused_wait_cpu(sim: IpmiSim, target: BmcTarget) -> float:
    """CPU (ms) this process spends on one request the BMC answers only after
    PAUSE seconds (ipmi_sim stopped meanwhile, as a slow real BMC): ~0 for a
    wait that sleeps, ~PAUSE for one that spins."""
    pid = sim._proc.pid  # the fixture's process; SIGSTOP/SIGCONT only
    done = threading.Thread(target=lambda: target.call(lambda b: b.chassis_status()))
    os.kill(pid, signal.SIGSTOP)
    try:
        c0 = time.process_time()
        done.start()
        time.sleep(PAUSE)
    finally:
        os.kill(pid, signal.SIGCONT)
    done.join()
    return (time.process_time() - c0) * 1000


# --------------------------------------------------------------------- main --

def bench_size(n: int, workdir: Path, cycles: int, exporter: Exporter | None) -> dict:
    sim = IpmiSim(workdir / f"bmc-{n}", sensors=n)
    try:
        sim.start()
        out = hostagent(sim, str(workdir), cycles)
        out["ipmitool"] = ipmitool(sim, cycles)
        if exporter is not None:
            out["ipmi_exporter"], out["exporter_sample"] = exporter_cycles(exporter, sim, cycles)
        return out
    finally:
        sim.stop()
        sim.kill()


def print_sizes(results: dict[int, dict], cycles: int) -> list[str]:
    verdicts = []
    print(f"\nOne collection cycle, session set up; {cycles} cycles after warm-up; "
          f"wall median/p90, CPU mean per cycle;\nratio = tool / agent, same scope: "
          f"ipmitool sdr vs sensors(), ipmi_exporter vs poll()")
    print(f"{'N':>3} {'tool':<37} {'sensors':>7} {'wall med ms':>11} {'p90 ms':>8} "
          f"{'CPU ms':>8} {'wall x':>7} {'CPU x':>7}")
    for n, r in results.items():
        rows = [("hostagent sensors()", r["sensors"], None),
                ("hostagent poll() (+dcmi/chassis/sel)", r["poll"], None),
                ("ipmitool sdr (fork)", r["ipmitool"], r["sensors"])]
        if "ipmi_exporter" in r:
            rows.append(("ipmi_exporter /ipmi (5 collectors)", r["ipmi_exporter"], r["poll"]))
        for label, s, base in rows:
            wx = f"{s['wall_median_ms'] / base['wall_median_ms']:.1f}" if base else "1"
            cx = f"{s['cpu_ms'] / base['cpu_ms']:.1f}" if base else "1"
            print(f"{n:>3} {label:<37} {s['sensors']:>7} {s['wall_median_ms']:>11.2f} "
                  f"{s['wall_p90_ms']:>8.2f} {s['cpu_ms']:>8.2f} {wx:>7} {cx:>7}")
        if "ipmi_exporter" in r:
            w = r["ipmi_exporter"]["wall_median_ms"] / r["poll"]["wall_median_ms"]
            c = r["ipmi_exporter"]["cpu_ms"] / r["poll"]["cpu_ms"]
            ok = "holds" if w >= 10 and c >= 10 else "does NOT hold"
            verdicts.append(f"N={n}: agent poll vs ipmi_exporter scrape: {w:.1f}x wall, "
                            f"{c:.1f}x CPU -> target (>= 10x both) {ok}")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[8, 64])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--race-cycles", type=int, default=100,
                        help="full polls of one BMC (N=8) per arm of the race test")
    parser.add_argument("--load-bmcs", type=int, default=4)
    parser.add_argument("--load-cycles", type=int, default=25,
                        help="full polls per BMC (N=8) per arm of the loaded race test")
    parser.add_argument("--no-exporter", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    ok, why = ipmi_sim_available()
    if not ok:
        sys.exit(why)
    from importlib.metadata import version
    print(f"pyghmi {version('pyghmi')}, {shutil.which('ipmitool')}, ipmi_sim; {os.cpu_count()} CPUs")
    have_exporter = os.access(EXPORTER, os.X_OK) and shutil.which("ipmimonitoring", path="/usr/sbin")
    if args.no_exporter:
        have_exporter = False
    elif not have_exporter:
        print(f"ipmi_exporter: not installed ({EXPORTER} + freeipmi-tools; "
              f"scripts/bootstrap.sh bench): column skipped")

    workdir = Path(tempfile.mkdtemp(prefix="hostagent-bench-ipmi-"))
    cache = Path.home() / ".freeipmi" / "sdr-cache"  # FreeIPMI's, per host:port
    cached = set(cache.iterdir()) if cache.is_dir() else set()
    exporter = None
    results: dict = {"sizes": {}, "race": []}
    try:
        if have_exporter:
            exporter = Exporter(workdir).start()
        for n in args.sizes:
            results["sizes"][n] = bench_size(n, workdir, args.cycles, exporter)
        if exporter is not None:
            for n, r in results["sizes"].items():
                print(f"ipmi_exporter sample, N={n}: " + "; ".join(r.pop("exporter_sample")[:7]))
        verdicts = print_sizes(results["sizes"], args.cycles)

        sims = [IpmiSim(workdir / f"race-{i}", sensors=8) for i in range(max(1, args.load_bmcs))]
        try:
            for s in sims:
                s.start()
            for fix in (True, False):
                results["race"].append(race(sims[:1], str(workdir), args.race_cycles, fix))
            if args.load_bmcs > 1:
                for fix in (True, False):
                    results["race"].append(race(sims, str(workdir), args.load_cycles, fix))
        finally:
            for s in sims:
                s.stop()
                s.kill()
    finally:
        if exporter is not None:
            exporter.stop()
        if cache.is_dir():
            for f in set(cache.iterdir()) - cached:
                f.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\npyghmi wake-up race: full polls (N=8, ~12 requests each), per-cycle wall; "
          f"slow = over {SLOW * 1000:.0f} ms")
    print(f"{'BMCs':>4} {'wait fix':<9} {'cycles':>6} {'median ms':>9} {'p99 ms':>8} "
          f"{'max ms':>8} {'slow':>5} {'CPU ms/cycle':>12} {'elapsed s':>9} "
          f"{f'CPU ms in a {PAUSE * 1000:.0f} ms wait':>22}")
    for r in results["race"]:
        paused = f"{r['paused_wait_cpu_ms']:.0f}" if "paused_wait_cpu_ms" in r else "-"
        print(f"{r['bmcs']:>4} {'on' if r['fix'] else 'off':<9} {r['cycles']:>6} "
              f"{r['median_ms']:>9.2f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['slow']:>5} "
              f"{r['cpu_ms']:>12.2f} {r['seconds']:>9.1f} {paused:>22}")
    print()
    for v in verdicts or ["ipmi_exporter not measured: 10x target not checked"]:
        print(v)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
