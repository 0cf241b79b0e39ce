"""The gpu feature at start (issue 13 item 4, docs/benchmarks.md "Start-up"):
building it opens no NVML, and XIDs are still watched, from the gpu
collector's first run, or from the start when that collector is disabled.
Over the real pynvml and the fake library (tests/fakenvml)."""
from __future__ import annotations

import time

import pytest

from agent.feature import FeatureContext
from agent.features import load_agent_config
from agent.features.gpu import GpuFeature
from agent.telemetry.collector import CollectorContext
from agent.telemetry.model import Batch


class Events(list):
    def __call__(self, kind, severity, source, message, **labels):
        self.append((kind, labels))


def build(fakenvml, tmp_path, extra: str = "") -> tuple[GpuFeature, Events]:
    path = tmp_path / "agent.toml"
    path.write_text(f'[gpu]\nnvml_library = "{fakenvml.library}"\n{extra}')
    events = Events()
    return GpuFeature(FeatureContext(load_agent_config(str(path)), str(tmp_path), events)), events


def wait_for_xid(fakenvml, events: Events, gpu: int = 2, xid: int = 48) -> None:
    fakenvml.queue_xid(gpu, xid)
    deadline = time.monotonic() + 3
    while not any(kind == "gpu.xid" and labels["xid"] == str(xid) for kind, labels in events):
        assert time.monotonic() < deadline, f"no gpu.xid event: {events}"
        time.sleep(0.01)


@pytest.fixture
def feature(fakenvml, tmp_path):
    made = []
    yield lambda extra="": made.append(build(fakenvml, tmp_path, extra)) or made[-1]
    for f, _ in made:
        f.close()


def test_building_the_feature_opens_no_nvml_and_the_first_collection_starts_the_xid_watch(
        fakenvml, feature):
    gpu, events = feature()
    assert not gpu.hub.opened and gpu.hub.nvml is None  # the start paid for no NVML
    time.sleep(0.2)
    assert not gpu.hub.opened  # nor did anything open it behind the start's back
    info = next(c for c in gpu.collectors() if c.name == "gpu")
    info.factory(CollectorContext(publish=events)).collect(Batch())  # the first run, after SERVING
    assert gpu.hub.opened
    wait_for_xid(fakenvml, events)


def test_with_the_gpu_collector_disabled_the_watcher_opens_nvml_itself(fakenvml, feature):
    gpu, events = feature("[collectors.gpu]\nenabled = false\n")
    wait_for_xid(fakenvml, events)
    assert gpu.hub.opened
