"""The real agent process with its GPUs behind the fake libnvidia-ml.so.1
(tests/fakenvml), loaded under the real pynvml through ``[gpu]
nvml_library``; the test drives the fake through its shared control file.

One agent with 8 H100s serves most tests (each uses its own GPU so they do
not disturb each other: 0 MIG, 1 power limit, 3 lost, 5 hung, 6 XID, 7
reset); two more show a node without a driver and an old driver.  gRPC over
the unix socket is root, an admin; plaintext loopback TCP is mapped to the
viewer role.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from agent.gen.hostagent.v1 import gpu_pb2, gpu_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from agent.gen.hostagent.v1 import operations_pb2, operations_pb2_grpc
from agent.gen.hostagent.v1 import telemetry_pb2 as tpb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc
from tests.agent_process import AgentProcess
from tests.fakenvml import build
from tests.fakenvml.control import FakeNvml
from tests.helpers import rpc_error

pytestmark = pytest.mark.integration
MIB = 1 << 20


def config(library: str) -> str:
    return f"""
[auth]
identities = {{ insecure = "viewer" }}
[gpu]
nvml_library = "{library}"
timeout = "500ms"
initial_backoff = "200ms"
max_backoff = "1s"
[collectors.gpu]
interval = "500ms"
"""


class Env:
    def __init__(self, agent: AgentProcess, fake: FakeNvml | None) -> None:
        self.agent, self.fake = agent, fake
        self.unix = grpc.insecure_channel(f"unix:{agent.socket}")
        self.gpu = gpu_pb2_grpc.GpuStub(self.unix)                       # admin
        self.viewer = gpu_pb2_grpc.GpuStub(agent.channel())             # viewer
        self.ops = operations_pb2_grpc.OperationsStub(self.unix)
        self.telemetry = telemetry_pb2_grpc.TelemetryStub(self.unix)
        self.inventory = inventory_pb2_grpc.InventoryStub(self.unix)

    def families(self) -> dict:
        text = urllib.request.urlopen(self.agent.metrics_url, timeout=5).read().decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    def values(self, name: str) -> dict[str, float]:
        """``{gpu label: value}`` of a family's whole-GPU series."""
        fam = self.families().get(name)
        return {s.labels["gpu"]: s.value for s in fam.samples
                if not s.labels.get("GPU_I_ID")} if fam else {}

    def collector(self, family: str, name: str = "gpu") -> list[float]:
        """The values of ``family{collector=name}`` (empty until it exists)."""
        fam = self.families().get(family)
        return [x.value for x in fam.samples if x.labels["collector"] == name] if fam else []

    def wait(self, what, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = what()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def run(self, call, request):
        op = call(request, timeout=5)
        return self.ops.WaitOperation(operations_pb2.WaitOperationRequest(name=op.name), timeout=30)

    def uuid(self, i: int) -> str:
        return self.fake.get_str(i, "uuid")


def start(tmp, library, fake=None) -> AgentProcess:
    agent = AgentProcess(tmp, config=config(library), env=fake.env if fake else {})
    try:
        return agent.wait_ready()
    except BaseException:
        agent.stop()
        raise


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-agent")
    fake = FakeNvml(build.build(), tmp / "fakenvml.ctl", gpus=8)
    agent = start(tmp, fake.library, fake)
    e = Env(agent, fake)
    try:
        e.wait(lambda: len(e.values("DCGM_FI_DEV_GPU_TEMP")) == 8)
        yield e
    finally:
        fake.release()
        agent.stop()


def watch(env, kinds, timeout=15.0):
    return env.telemetry.WatchEvents(tpb.WatchEventsRequest(kinds=kinds), timeout=timeout)


# -- telemetry -----------------------------------------------------------------
def test_eight_gpus_full_telemetry_as_dcgm_exporter_names_it(env):
    fams = env.families()
    fake = env.fake
    for i in range(8):
        labels = {"gpu": str(i), "UUID": env.uuid(i), "pci_bus_id": fake.get_str(i, "bus_id"),
                  "device": f"nvidia{i}", "modelName": "NVIDIA H100 80GB HBM3"}
        want = {"DCGM_FI_DEV_SM_CLOCK": fake.get(i, "sm_clock"),
                "DCGM_FI_DEV_MEM_CLOCK": fake.get(i, "mem_clock"),
                "DCGM_FI_DEV_GPU_TEMP": fake.get(i, "gpu_temp"),
                "DCGM_FI_DEV_MEMORY_TEMP": fake.get(i, "mem_temp"),
                "DCGM_FI_DEV_POWER_USAGE": fake.get(i, "power_mw") / 1000,
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": fake.get(i, "energy_mj"),
                "DCGM_FI_DEV_PCIE_TX_THROUGHPUT": fake.get(i, "pcie_tx_kbs"),
                "DCGM_FI_DEV_PCIE_RX_THROUGHPUT": fake.get(i, "pcie_rx_kbs"),
                "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": fake.get(i, "pcie_replay"),
                "DCGM_FI_DEV_GPU_UTIL": fake.get(i, "util_gpu"),
                "DCGM_FI_DEV_MEM_COPY_UTIL": fake.get(i, "util_mem"),
                "DCGM_FI_DEV_ENC_UTIL": fake.get(i, "util_enc"),
                "DCGM_FI_DEV_DEC_UTIL": fake.get(i, "util_dec"),
                "DCGM_FI_DEV_FB_USED": fake.get(i, "mem_used") / MIB,
                "DCGM_FI_DEV_FB_RESERVED": fake.get(i, "mem_reserved") / MIB,
                "DCGM_FI_DEV_FB_FREE": (fake.get(i, "mem_total") - fake.get(i, "mem_used")
                                        - fake.get(i, "mem_reserved")) / MIB,
                "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": fake.get(i, "nvlink_tx_kib")
                + fake.get(i, "nvlink_rx_kib"),
                "DCGM_FI_DEV_POWER_MGMT_LIMIT": fake.get(i, "power_limit_mw") / 1000,
                "DCGM_FI_DEV_FAN_SPEED": fake.get(i, "fan"),
                "DCGM_FI_DEV_PSTATE": fake.get(i, "pstate"),
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 0, "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": 0,
                "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 0, "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0,
                "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": 0, "DCGM_FI_DEV_XID_ERRORS": 0,
                "hostagent_gpu_up": 1,
                "hostagent_gpu_energy_joules": fake.get(i, "energy_mj") / 1000}
        for name, value in want.items():
            if i in (0, 1, 3, 5, 6, 7) and name in ("DCGM_FI_DEV_POWER_MGMT_LIMIT",
                                                    "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_USED",
                                                    "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_UTIL",
                                                    "DCGM_FI_DEV_MEM_COPY_UTIL"):
                continue  # other tests of this module change these GPUs
            fam = fams[name]
            got = [s for s in fam.samples if s.labels.get("UUID") == labels["UUID"]
                   and not s.labels.get("GPU_I_ID")]
            assert len(got) == 1, (name, i)
            assert {k: got[0].labels[k] for k in labels} == labels
            assert got[0].value == pytest.approx(value), (name, i)
    assert fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].type == "gauge"
    assert fams["hostagent_gpu_energy_joules"].type == "counter"
    assert "DCGM_FI_DEV_RETIRED_SBE" not in fams  # Hopper remaps rows instead
    idle = [s for s in fams["hostagent_gpu_clock_event_active"].samples
            if s.labels["gpu"] == "2" and s.value == 1]
    assert [s.labels["reason"] for s in idle] == ["gpu_idle"]


def test_process_memory_is_reported_with_the_command_name(env):
    import os
    env.fake.add_process(2, os.getpid(), 3 * MIB)
    fam = env.wait(lambda: env.families().get("hostagent_gpu_process_memory_bytes"))
    (s,) = [s for s in fam.samples if s.labels["gpu"] == "2"]
    assert s.labels["pid"] == str(os.getpid()) and s.value == 3 * MIB
    assert s.labels["comm"] == open(f"/proc/{os.getpid()}/comm").read().strip()
    env.fake.clear_processes(2)


def test_list_gpus_and_the_inventory_name_every_gpu_by_uuid(env):
    resp = env.viewer.ListGpus(gpu_pb2.ListGpusRequest(), timeout=5)
    assert (resp.driver_version, resp.cuda_version) == ("570.124.06", "12.8")
    assert [g.info.uuid for g in resp.gpus] == [env.uuid(i) for i in range(8)]
    g = resp.gpus[4]
    assert g.info.power_limits.max_watts == 700 and g.info.pci_bus_id == "00000000:9A:00.0"
    assert g.info.numa_node == 1 and g.info.mig_capable and g.temperature_celsius == 35
    inv = env.inventory.GetInventory(inventory_pb2.GetInventoryRequest(), timeout=10).inventory
    assert [x.uuid for x in inv.gpus] == [env.uuid(i) for i in range(8)]
    assert inv.gpus[0].serial == env.fake.get_str(0, "serial") and inv.gpus[0].driver_version
    by_bus = env.gpu.GetGpu(gpu_pb2.GetGpuRequest(gpu="9a:00.0"), timeout=5)
    by_index = env.gpu.GetGpu(gpu_pb2.GetGpuRequest(gpu="4"), timeout=5)
    assert by_bus.info.uuid == by_index.info.uuid == env.uuid(4)
    code, details = rpc_error(lambda: env.gpu.GetGpu(gpu_pb2.GetGpuRequest(gpu="GPU-nope"),
                                                     timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "gpu: no GPU 'GPU-nope'" in details


# -- events ------------------------------------------------------------------------
def test_xid_79_reaches_a_watcher_within_two_seconds(env):
    stream = watch(env, ["gpu.xid"])
    try:
        time.sleep(0.3)  # the watch is registered
        t0 = time.monotonic()
        env.fake.queue_xid(6, 79)
        ev = next(iter(stream))
        elapsed = time.monotonic() - t0
    finally:
        stream.cancel()
    assert elapsed < 2.0
    assert ev.labels["xid"] == "79" and ev.labels["uuid"] == env.uuid(6)
    assert ev.severity == tpb.SEVERITY_CRITICAL and "fallen off the bus" in ev.message
    env.wait(lambda: env.values("DCGM_FI_DEV_XID_ERRORS").get("6") == 79)


def test_a_lost_gpu_is_one_event_its_series_go_the_others_stay_then_it_recovers(env):
    stream = watch(env, ["gpu.lost", "gpu.recovered"], timeout=20)
    events = []
    try:
        time.sleep(0.3)
        env.fake.lose(3)
        env.wait(lambda: env.values("hostagent_gpu_up").get("3") == 0)
        temps = env.values("DCGM_FI_DEV_GPU_TEMP")
        assert "3" not in temps and sorted(temps) == ["0", "1", "2", "4", "5", "6", "7"]
        time.sleep(1.5)  # re-checked with backoff: still one event
        env.fake.lose(3, False)
        env.wait(lambda: "3" in env.values("DCGM_FI_DEV_GPU_TEMP"))
        for ev in stream:
            events.append(ev)
            if ev.kind == "gpu.recovered":
                break
    finally:
        stream.cancel()
    assert [(e.kind, e.labels["uuid"]) for e in events] == [("gpu.lost", env.uuid(3)),
                                                            ("gpu.recovered", env.uuid(3))]
    assert "lost" in events[0].labels["error"].lower()


def _p99(samples):
    samples = sorted(samples)
    return samples[int(0.99 * (len(samples) - 1))]


def _latencies(env, n=40):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        env.viewer.ListGpus(gpu_pb2.ListGpusRequest(), timeout=5)
        env.telemetry.GetMetrics(tpb.GetMetricsRequest(selector=tpb.MetricSelector(
            names=["DCGM_FI_DEV_GPU_TEMP"])), timeout=5)
        out.append(time.perf_counter() - t0)
        time.sleep(0.02)
    return out


def test_a_hung_nvml_call_costs_its_gpu_only(env):
    before = _p99(_latencies(env))
    env.fake.block("nvmlDeviceGetTemperature", 5, 30)
    try:
        env.wait(lambda: env.values("hostagent_gpu_up").get("5") == 0, timeout=5)
        during = _p99(_latencies(env))
        assert "5" not in env.values("DCGM_FI_DEV_GPU_TEMP")
        assert len(env.values("DCGM_FI_DEV_GPU_TEMP")) >= 6
        fams = env.families()
        up = {s.labels["collector"]: s.value for s in fams["hostagent_collector_up"].samples}
        assert up["gpu"] == 1  # the GPU timed out, not the collector
        code, _ = rpc_error(lambda: env.gpu.GetGpu(gpu_pb2.GetGpuRequest(gpu="5"), timeout=5))
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        env.fake.release()
    assert during < before + 0.010, (before, during)
    env.wait(lambda: env.values("hostagent_gpu_up").get("5") == 1 and
             "5" in env.values("DCGM_FI_DEV_GPU_TEMP"), timeout=10)


# -- settings ------------------------------------------------------------------------
def test_power_limit_out_of_range_is_invalid_argument_and_changes_nothing(env):
    calls = env.fake.calls("nvmlDeviceSetPowerManagementLimit")
    code, details = rpc_error(lambda: env.gpu.SetPowerLimit(gpu_pb2.SetPowerLimitRequest(
        request_id="pl-too-high", gpu=env.uuid(1), watts=900), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("watts:")
    assert "200 to 700 W" in details
    assert env.fake.get(1, "power_limit_mw") == 700000
    assert env.fake.calls("nvmlDeviceSetPowerManagementLimit") == calls


def test_power_limit_is_read_back_and_a_retried_request_id_runs_once(env):
    calls = env.fake.calls("nvmlDeviceSetPowerManagementLimit")
    req = gpu_pb2.SetPowerLimitRequest(request_id="pl-1", gpu="2a:00.0", watts=450)
    op = env.run(env.gpu.SetPowerLimit, req)
    assert op.state == operations_pb2.OPERATION_STATE_SUCCEEDED, op.error
    assert op.resource == f"gpu/{env.uuid(1)}"
    result = json_format.MessageToDict(op.result)
    assert result == {"uuid": env.uuid(1), "power_limit_watts": 450.0}
    again = env.run(env.gpu.SetPowerLimit, req)
    assert again.name == op.name
    assert env.fake.calls("nvmlDeviceSetPowerManagementLimit") == calls + 1
    assert env.fake.get(1, "power_limit_mw") == 450000
    env.wait(lambda: env.values("DCGM_FI_DEV_POWER_MGMT_LIMIT").get("1") == 450)
    # Both calls are in the audit trail, with who asked; other arguments are refused.
    audit = [json.loads(line) for line in
             (env.agent.state / "audit.jsonl").read_text().splitlines()]
    mine = [a for a in audit if a.get("request_id") == "pl-1"]
    assert [a["method"] for a in mine] == ["/hostagent.v1.Gpu/SetPowerLimit"] * 2
    assert {a["identity"] for a in mine} == {"unix:uid:0"}
    changed = gpu_pb2.SetPowerLimitRequest(request_id="pl-1", gpu="2a:00.0", watts=500)
    code, details = rpc_error(lambda: env.gpu.SetPowerLimit(changed, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in details


def test_a_viewer_cannot_set_anything(env):
    g = env.uuid(1)
    for call, req in ((env.viewer.SetPowerLimit, gpu_pb2.SetPowerLimitRequest(gpu=g, watts=400)),
                      (env.viewer.SetPersistenceMode, gpu_pb2.SetPersistenceModeRequest(gpu=g)),
                      (env.viewer.SetComputeMode, gpu_pb2.SetComputeModeRequest(gpu=g, mode=1)),
                      (env.viewer.SetEccMode, gpu_pb2.SetEccModeRequest(gpu=g)),
                      (env.viewer.SetMigMode, gpu_pb2.SetMigModeRequest(gpu=g, enabled=True)),
                      (env.viewer.ConfigureMig, gpu_pb2.ConfigureMigRequest(gpu=g)),
                      (env.viewer.ResetGpu, gpu_pb2.ResetGpuRequest(gpu=g))):
        req.request_id = "viewer-try"
        code, _ = rpc_error(lambda: call(req, timeout=5))
        assert code == grpc.StatusCode.PERMISSION_DENIED, call
    assert env.fake.get(1, "mig_current") == 0 and env.fake.get(1, "persistence") == 1


def test_mig_configure_and_reconfigure_is_idempotent(env):
    g = env.uuid(0)
    op = env.run(env.gpu.SetMigMode, gpu_pb2.SetMigModeRequest(request_id="mig-on", gpu="0",
                                                               enabled=True))
    assert op.state == operations_pb2.OPERATION_STATE_SUCCEEDED, op.error
    assert json_format.MessageToDict(op.result)["mig_current"] is True

    def configure(rid, *specs):
        req = gpu_pb2.ConfigureMigRequest(request_id=rid, gpu=g, instances=[
            gpu_pb2.MigInstanceSpec(profile=p, compute_slices=c) for p, c in specs])
        op = env.run(env.gpu.ConfigureMig, req)
        assert op.state == operations_pb2.OPERATION_STATE_SUCCEEDED, op.error
        return json_format.MessageToDict(op.result)

    first = configure("mig-1", ("3g.40gb", []), ("3g.40gb", [1, 1, 1]))
    assert first["changed"] and first["created"] == 2
    layout = env.fake.mig_layout(0)
    again = configure("mig-2", ("3g.40gb", [1, 1, 1]), ("3g.40gb", []))
    assert again["changed"] is False and env.fake.mig_layout(0) == layout
    env.wait(lambda: sorted((s.labels["GPU_I_PROFILE"], s.labels["GPU_I_ID"])
                            for s in env.families()["DCGM_FI_DEV_FB_FREE"].samples
                            if s.labels["gpu"] == "0" and s.labels["GPU_I_ID"])
             == [("3g.40gb", "1"), ("3g.40gb", "2")])
    other = configure("mig-3", ("3g.40gb", []), ("2g.20gb", []), ("1g.10gb", []),
                      ("1g.10gb", []))
    assert other["changed"] and other["destroyed"] == 1 and other["created"] == 3
    assert sorted(x["profile"] for x in other["layout"]) == ["1g.10gb", "1g.10gb", "2g.20gb",
                                                             "3g.40gb"]
    info = env.gpu.GetGpu(gpu_pb2.GetGpuRequest(gpu=g), timeout=5).info
    assert info.mig_current and len(info.mig_instances) == 4
    code, details = rpc_error(lambda: env.gpu.ConfigureMig(gpu_pb2.ConfigureMigRequest(
        request_id="mig-bad", gpu=g, instances=[gpu_pb2.MigInstanceSpec(profile="9g.1tb")]),
        timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("instances[0].profile:")


def test_mig_layout_changes_and_resets_refuse_while_processes_run(env):
    import os
    env.fake.add_process(7, os.getpid(), MIB)
    try:
        code, details = rpc_error(lambda: env.gpu.ResetGpu(gpu_pb2.ResetGpuRequest(
            request_id="reset-7", gpu="7"), timeout=5))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "force" in details
        code, _ = rpc_error(lambda: env.gpu.SetMigMode(gpu_pb2.SetMigModeRequest(
            request_id="mig-7", gpu="7", enabled=True), timeout=5))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        env.fake.clear_processes(7)
    op = env.run(env.gpu.ResetGpu, gpu_pb2.ResetGpuRequest(request_id="reset-7b", gpu="7"))
    assert op.state == operations_pb2.OPERATION_STATE_SUCCEEDED, op.error
    assert env.fake.get(7, "resets") == 1
    assert json_format.MessageToDict(op.result)["uuid"] == env.uuid(7)


def test_the_cli_lists_the_gpus(env):
    out = subprocess.run([sys.executable, "-m", "agent", "gpu", "list", "--agent",
                          f"unix:{env.agent.socket}"], capture_output=True, text=True, timeout=30)
    assert env.uuid(4) in out.stdout and "driver 570.124.06" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "agent", "gpu", "power-limit", "4", "--agent",
                          f"unix:{env.agent.socket}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("700 W (min 200, max 700"), out
    out = subprocess.run([sys.executable, "-m", "agent", "gpu", "persistence", env.uuid(2), "off",
                          "--request-id", "cli-persistence", "--agent", f"unix:{env.agent.socket}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"{env.uuid(2)}: persistence off", out
    assert "request id cli-persistence" in out.stderr and env.fake.get(2, "persistence") == 0
    out = subprocess.run([sys.executable, "-m", "agent", "gpu", "show", "GPU-nope", "--agent",
                          f"unix:{env.agent.socket}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "NOT_FOUND" in out.stderr, out


# -- other nodes -----------------------------------------------------------------------
def test_no_driver_the_collector_is_absent_the_service_says_why_the_agent_runs_on(tmp_path):
    missing = tmp_path / "no-driver" / "libnvidia-ml.so.1"
    with start(tmp_path, missing) as agent:
        e = Env(agent, None)
        assert e.wait(lambda: e.collector("hostagent_collector_present"), timeout=15) == [0]
        code, details = rpc_error(lambda: e.viewer.ListGpus(gpu_pb2.ListGpusRequest(), timeout=5))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and str(missing) in details
        assert e.telemetry.GetMetrics(tpb.GetMetricsRequest(selector=tpb.MetricSelector(
            names=["hostagent_collector_up"])), timeout=5).families
        assert len(agent.events("gpu.no_driver")) == 1


def test_an_old_driver_still_reports_what_it_has(tmp_path):
    fake = FakeNvml(build.build(build.OLD_DRIVER), tmp_path / "old.ctl", gpus=1)
    with start(tmp_path, fake.library, fake) as agent:
        e = Env(agent, fake)
        temps = e.wait(lambda: e.values("DCGM_FI_DEV_GPU_TEMP"))
        assert temps == {"0": 31}
        fams = e.families()
        assert "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS" not in fams  # no such function
        assert e.values("DCGM_FI_DEV_FB_USED") == {"0": 1024 + 552}
        assert e.values("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") == {"0": 5000000000}
        assert [s.labels["reason"] for s in fams["hostagent_gpu_clock_event_active"].samples
                if s.value] == ["gpu_idle"]
        assert e.wait(lambda: e.collector("hostagent_collector_up"), timeout=15) == [1]
