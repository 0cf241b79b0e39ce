"""The gpu collector and the XID watcher in this process, over the real
pynvml and the fake library: the events a cycle derives (double-bit ECC,
row remap failure, clock slowdowns), a lost GPU as one event then a
recovery, energy that never goes down, and XIDs with their meaning."""
from __future__ import annotations

import time

import pytest

from agent.gpu.collector import GpuCollector
from agent.gpu.config import GpuConfig
from agent.gpu.events import XidWatcher
from agent.gpu.hub import GpuHub
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch
from tests.helpers import batch_values


class Events(list):
    def __call__(self, kind, severity, source, message, **labels):
        self.append((kind, severity, message, labels))

    def kinds(self):
        return [e[0] for e in self]


@pytest.fixture
def rig(fakenvml, tmp_path):
    events = Events()
    hub = GpuHub(GpuConfig(nvml_library=str(fakenvml.library), timeout=0.5, initial_backoff=0.05,
                           max_backoff=0.1), str(tmp_path), events)
    collector = GpuCollector(CollectorContext(publish=events), hub)
    yield fakenvml, hub, collector, events
    collector.close()
    hub.close()


def collect(collector):
    batch = Batch()
    collector.collect(batch)
    return batch_values(batch)


def series(values, name, gpu):
    return [v for (n, labels), v in values.items() if n == name and labels[0] == str(gpu)]


def test_derived_events(rig):
    fake, hub, collector, events = rig
    collect(collector)
    assert events == []
    fake.set(2, "ecc_dbe_vol", 3)
    fake.set(4, "remap_failure", 1)
    fake.set(5, "clock_events", 0x40 | 0x4)  # HW thermal slowdown, SW power cap
    collect(collector)
    assert sorted(events.kinds()) == ["gpu.ecc_dbe", "gpu.row_remap_failure", "gpu.throttle"]
    throttle = next(e for e in events if e[0] == "gpu.throttle")
    assert throttle[3]["started"] == "hw_thermal_slowdown" and "sw_power_cap" not in throttle[2]
    events.clear()
    collect(collector)
    assert events == []  # nothing new
    fake.set(5, "clock_events", 0x1)
    collect(collector)
    assert events.kinds() == ["gpu.throttle"] and events[0][3]["ended"] == "hw_thermal_slowdown"


def test_a_lost_gpu_is_one_event_and_comes_back(rig):
    fake, hub, collector, events = rig
    collect(collector)
    fake.lose(1)
    for _ in range(5):
        values = collect(collector)
        time.sleep(0.06)
    assert series(values, "hostagent_gpu_up", 1) == [0.0]
    assert series(values, "DCGM_FI_DEV_GPU_TEMP", 1) == []
    assert len(series(values, "DCGM_FI_DEV_GPU_TEMP", 2)) == 1
    assert events.kinds() == ["gpu.lost"]
    fake.lose(1, False)
    deadline = time.monotonic() + 3
    while not series(collect(collector), "DCGM_FI_DEV_GPU_TEMP", 1):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert events.kinds() == ["gpu.lost", "gpu.recovered"]


def test_energy_never_goes_down_when_the_driver_reloads(rig):
    fake, hub, collector, events = rig
    before = series(collect(collector), "hostagent_gpu_energy_joules_total", 0)[0]
    fake.set(0, "energy_mj", 1000)  # the driver's counter restarted
    values = collect(collector)
    assert series(values, "hostagent_gpu_energy_joules_total", 0)[0] == before + 1.0
    assert series(values, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0) == [1000.0]  # DCGM's, as is


def test_xids_become_events_with_their_meaning(rig):
    fake, hub, collector, events = rig
    watcher = XidWatcher(hub, events, wait_ms=50)
    watcher.start()
    try:
        fake.queue_xid(3, 48)
        deadline = time.monotonic() + 2
        while "gpu.xid" not in events.kinds():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        watcher.stop()
    kind, severity, message, labels = events[0]
    assert labels["xid"] == "48" and "double-bit ECC" in message
    assert series(collect(collector), "DCGM_FI_DEV_XID_ERRORS", 3) == [48.0]


def test_no_gpu_and_no_driver_are_no_data(make_fakenvml, tmp_path):
    fake = make_fakenvml(gpus=0)
    hub = GpuHub(GpuConfig(nvml_library=str(fake.library)), str(tmp_path))
    try:
        with pytest.raises(NoData, match="no GPU"):
            GpuCollector(CollectorContext(), hub).collect(Batch())
    finally:
        hub.close()
    hub = GpuHub(GpuConfig(nvml_library=str(tmp_path / "missing.so")), str(tmp_path))
    with pytest.raises(NoData, match="missing.so"):
        GpuCollector(CollectorContext(), hub).collect(Batch())
    hub.close()
