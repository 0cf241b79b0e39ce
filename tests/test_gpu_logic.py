"""The GPU layer's pure parts: MIG plans, the energy counter, the PCIe
neighbourhood of a GPU, the ``[gpu]`` table, XID meanings, bus ids."""
from __future__ import annotations

import os

import pytest

from agent.backends.hostfs import HostFS
from agent.backends.nvml_model import ComputeInstance, GpuInstance, MigProfile
from agent.errors import InvalidArgument
from agent.gpu import mig
from agent.gpu.config import GpuConfig, gpu_to_toml, parse_gpu
from agent.gpu.energy import EnergyCounter
from agent.gpu.events import describe
from agent.gpu.hub import normalize_bus_id
from agent.gpu.topology import HOST_BRIDGE, SWITCH, nearby_nics
from agent.telemetry.events import Severity

PROFILES = (MigProfile(0, 19, "1g.10gb", 1, 7, 9856), MigProfile(1, 14, "2g.20gb", 2, 3, 19968),
            MigProfile(2, 9, "3g.40gb", 3, 2, 40192), MigProfile(4, 0, "7g.80gb", 7, 1, 80384))


def gi(id_, profile, *slices):
    return GpuInstance(id_, 0, profile, 0, 0, 0,
                       tuple(ComputeInstance(i, 0, s) for i, s in enumerate(slices)))


def W(profile, *compute):
    return mig.WantedInstance(profile, tuple(compute))


def test_the_same_layout_twice_is_an_empty_plan():
    wanted = mig.normalize([W("3g.40gb"), W("3g.40gb")], PROFILES)
    assert wanted == [W("3g.40gb", 3), W("3g.40gb", 3)]
    assert mig.plan([gi(1, "3g.40gb", 3), gi(2, "3g.40gb", 3)], wanted, PROFILES).empty


def test_a_plan_keeps_what_matches_destroys_the_rest_and_creates_largest_first():
    current = [gi(1, "3g.40gb", 3), gi(2, "3g.40gb", 1, 1, 1)]
    wanted = mig.normalize([W("1g.10gb"), W("3g.40gb", 1, 1, 1), W("2g.20gb")], PROFILES)
    p = mig.plan(current, wanted, PROFILES)
    assert [g.id for g in p.destroy] == [1]
    assert [w.profile for w in p.create] == ["2g.20gb", "1g.10gb"]


def test_an_empty_layout_destroys_everything():
    p = mig.plan([gi(1, "7g.80gb", 7)], [], PROFILES)
    assert [g.id for g in p.destroy] == [1] and p.create == ()


@pytest.mark.parametrize("wanted, field, text", [
    ([W("9g.99gb")], "instances[0].profile", "not a profile"),
    ([W("3g.40gb", 2, 2)], "instances[0].compute_slices", "at most 3"),
    ([W("3g.40gb")] * 3, "instances[2].profile", "at most 2"),
    ([W("7g.80gb"), W("1g.10gb")], "instances", "8 compute slices"),
])
def test_impossible_layouts_name_the_entry(wanted, field, text):
    with pytest.raises(InvalidArgument) as info:
        mig.normalize(wanted, PROFILES)
    assert info.value.field == field and text in info.value.message


def test_energy_never_goes_down_across_restarts_and_driver_reloads(tmp_path):
    path = str(tmp_path / "gpu.energy.json")
    e = EnergyCounter(path)
    assert e.add(1000) == 1000 and e.add(5000) == 5000
    e = EnergyCounter(path)          # agent restart, same driver
    assert e.add(6000) == 6000
    assert e.add(200) == 6200        # driver reloaded: its counter restarted
    assert e.restarts == 1
    e = EnergyCounter(path)          # agent restart after a driver reload while it was down
    assert e.add(100) == 6300
    (tmp_path / "gpu.energy.json").write_text("{not json")
    assert EnergyCounter(path).add(7) == 7  # unreadable: starts again, says so in the log


def _sysfs(root, rel_dev: str, link: str) -> None:
    real = root / "sys/devices" / rel_dev
    real.mkdir(parents=True, exist_ok=True)
    target = root / link
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(real, target)


def test_nics_near_a_gpu_from_sysfs(tmp_path):
    # GPU and nic0 below one switch (bridges 17:01.0 and 18:00.0); nic1 on another
    # root port of the same host bridge; nic2 on another host bridge.
    _sysfs(tmp_path, "pci0000:17/0000:17:01.0/0000:18:00.0/0000:19:00.0/0000:1a:00.0",
           "sys/bus/pci/devices/0000:1a:00.0")
    _sysfs(tmp_path, "pci0000:17/0000:17:01.0/0000:18:00.0/0000:19:01.0/0000:1b:00.0",
           "sys/class/net/nic0/device")
    _sysfs(tmp_path, "pci0000:17/0000:17:02.0/0000:30:00.0", "sys/class/net/nic1/device")
    _sysfs(tmp_path, "pci0000:80/0000:80:01.0/0000:81:00.0", "sys/class/net/nic2/device")
    (tmp_path / "sys/class/net/lo").mkdir()
    got = nearby_nics(HostFS(tmp_path), "00000000:1A:00.0")
    assert [(n.name, n.pci_address, n.affinity) for n in got] == [
        ("nic0", "0000:1b:00.0", SWITCH), ("nic1", "0000:30:00.0", HOST_BRIDGE)]
    assert nearby_nics(HostFS(tmp_path), "00000000:99:00.0") == []


def test_the_gpu_table():
    def fail(key, message):
        return ValueError(f"{key}: {message}")
    assert parse_gpu(None, fail) == GpuConfig()
    cfg = parse_gpu({"nvml_library": "/opt/nvml/libnvidia-ml.so.1", "timeout": "500ms",
                     "field_batching": False}, fail)
    assert (cfg.nvml_library, cfg.timeout, cfg.field_batching) == \
        ("/opt/nvml/libnvidia-ml.so.1", 0.5, False)
    import tomllib
    assert parse_gpu(tomllib.loads("\n".join(gpu_to_toml(cfg)))["gpu"], fail) == cfg
    for bad, key in (({"nvml_library": "relative.so"}, "gpu.nvml_library"),
                     ({"colour": 1}, "gpu.colour"), ({"timeout": "0s"}, "gpu.timeout")):
        with pytest.raises(ValueError, match=key):
            parse_gpu(bad, fail)


def test_xid_meanings():
    assert describe(79) == ("GPU has fallen off the bus: it no longer answers", Severity.CRITICAL)
    assert describe(13)[1] is Severity.WARNING and "catalogue" in describe(12345)[0]
    for xid in (13, 31, 43, 45, 48, 61, 62, 63, 64, 68, 74, 79, 92, 94, 95, 119, 120):
        assert "catalogue" not in describe(xid)[0]


@pytest.mark.parametrize("text, want", [("18:00.0", "00000000:18:00.0"),
                                        ("0000:5d:00.0", "00000000:5D:00.0"),
                                        ("00000000:DB:00.0", "00000000:DB:00.0"),
                                        ("GPU-1", None), ("3", None)])
def test_bus_ids(text, want):
    assert normalize_bus_id(text) == want
