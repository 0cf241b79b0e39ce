"""The NVML backend (agent/backends/nvml*.py) under the real pynvml bindings,
against the fake libnvidia-ml.so.1 (tests/fakenvml), in this process.

Covers: loading the configured library (and pynvml's private names it
relies on); GPUs found by UUID and PCI bus id; static facts and one cycle's
values equal to the fake's; batched and one-by-one reading agree, and the
call counts; NVML errors as the agent's (not supported and no permission are
remembered, a one-off error is retried, a lost GPU ends the cycle, one
field's own status); an old driver (functions missing) falls back; no
driver; MIG reading and changes; the event set; settings read back.
"""
from __future__ import annotations

import os

import pynvml
import pytest

from agent.backends import nvml_call
from agent.backends.nvml import Nvml
from agent.backends.nvml_model import (GpuInUse, GpuLost, GpuNotSupported, NvmlFunctionMissing,
                                       NvmlMissing)
from tests.fakenvml import build
from tests.fakenvml import control as fk

H100 = "NVIDIA H100 80GB HBM3"
MIB = 1 << 20


@pytest.fixture
def open_nvml():
    opened = []

    def open_(fake, batching: bool = True) -> Nvml:
        n = Nvml(str(fake.library), batching)
        n.open()
        opened.append(n)
        return n

    yield open_
    for n in opened:
        n.close()


def test_pynvml_names_the_loader_relies_on_exist():
    # agent/backends/nvml_call.py sets these; an upgrade that drops one must fail here.
    for name in ("nvmlLib", "libLoadLock", "_nvmlGetFunctionPointer_cache", "_nvmlLib_refcount"):
        assert hasattr(pynvml, name), name


def test_the_fake_is_built_against_nvidias_header_and_can_leave_functions_out():
    header = build.nvml_include_dir() / "nvml.h"
    assert "NVML_API_VERSION" in header.read_text()
    assert set(build.OLD_DRIVER) <= build.omittable()
    import ctypes
    new, old = ctypes.CDLL(str(build.build())), ctypes.CDLL(str(build.build(build.OLD_DRIVER)))
    for name in build.OLD_DRIVER:
        assert hasattr(new, name) and not hasattr(old, name), name
    with pytest.raises(build.BuildError, match="cannot omit"):
        build.build(["nvmlDeviceGetName"])


def test_gpus_are_found_with_uuid_and_bus_id(fakenvml, open_nvml):
    n = open_nvml(fakenvml)
    assert n.driver_version() == "570.124.06" and n.cuda_version() == "12.8"
    devs = n.devices()
    assert [d.uuid for d in devs] == [fakenvml.get_str(i, "uuid") for i in range(8)]
    assert devs[3].pci_bus_id == "00000000:5D:00.0"
    assert n.device(devs[5].uuid).pci_bus_id == devs[5].pci_bus_id


def test_static_facts_are_the_fakes(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[2]
    s = dev.static()
    assert (s.uuid, s.index, s.minor, s.device, s.name) == (dev.uuid, 2, 2, "nvidia2", H100)
    assert s.serial == fakenvml.get_str(2, "serial") and s.vbios == "96.00.99.00.03"
    assert (s.power_min_w, s.power_max_w, s.power_default_w) == (200.0, 700.0, 700.0)
    assert s.memory_total_bytes == 81559 * MIB and s.numa_node == 0
    assert (s.persistence, s.compute_mode, s.ecc_current, s.ecc_pending) == (True, "default", True, True)
    assert (s.mig_capable, s.mig_current, s.nvlinks, s.cuda_capability) == (True, False, 18, "9.0")


def _expected(fake, i):
    return dict(sm_clock_mhz=1980 - 15 * i, mem_clock_mhz=2619, gpu_temp_c=31 + i,
                power_w=(112000 + 1250 * i) / 1000, energy_mj=5000000000 + 1000003 * i,
                pcie_tx_kbs=1000 + 10 * i, pcie_rx_kbs=2000 + 10 * i, pcie_replay=i,
                gpu_util=10 + i, mem_copy_util=3 + i, enc_util=0, dec_util=i % 2,
                fb_used_mib=1024 + 512 * i, fb_reserved_mib=552,
                fb_free_mib=81559 - 552 - 1024 - 512 * i, power_limit_w=700.0, pstate=0,
                clock_events=1, ecc_dbe_volatile=0, remapped_uncorrectable=0, remap_failure=0,
                nvlink_crc_flit=0)


@pytest.mark.parametrize("batching", [True, False])
def test_one_cycle_reads_the_fakes_values(fakenvml, open_nvml, batching):
    fakenvml.set(4, "ecc_dbe_vol", 2)
    fakenvml.set(4, "nvlink_replay", 3)
    dev = open_nvml(fakenvml, batching).devices()[4]
    s = dev.sample(dev.static())
    for name, want in _expected(fakenvml, 4).items():
        want = 2 if name == "ecc_dbe_volatile" else 3 * 18 if name == "nvlink_replay" else want
        assert getattr(s, name) == want, name
    assert s.retired_sbe is None  # Hopper: no page retirement
    assert (s.memory_temp_c, s.nvlink_bandwidth_kib) == ((44, 15000000) if batching else (None, None))
    assert s.failed == ()


def test_batching_cuts_the_calls(fakenvml, open_nvml):
    n = open_nvml(fakenvml)
    dev = n.devices()[0]
    static = dev.static()
    dev.sample(static)  # the first cycle learns what is not supported
    fakenvml.reset_calls()
    s = dev.sample(static)
    assert s.calls == fakenvml.calls(gpu=0) <= 20
    n.batching = False
    dev.sample(static)
    fakenvml.reset_calls()
    dev.sample(static)
    assert fakenvml.calls(gpu=0) > 4 * 18  # NVLink errors: one call per link and counter


def test_unsupported_and_forbidden_values_are_not_asked_again(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[1]
    static = dev.static()
    fakenvml.error("nvmlDeviceGetFanSpeed", 1, fk.NOT_SUPPORTED)
    fakenvml.error("nvmlDeviceGetPerformanceState", 1, fk.NO_PERMISSION)
    first = dev.sample(static)
    assert first.fan_pct is None and first.pstate is None and first.sm_clock_mhz == 1965
    fakenvml.reset_calls()
    dev.sample(static)
    assert fakenvml.calls("nvmlDeviceGetFanSpeed") == fakenvml.calls("nvmlDeviceGetPerformanceState") == 0


def test_a_one_off_error_is_named_and_retried(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[1]
    static = dev.static()
    fakenvml.error("nvmlDeviceGetTemperature", 1, fk.UNKNOWN)
    s = dev.sample(static)
    assert s.gpu_temp_c is None and s.failed == ("gpu_temp",) and s.power_w is not None
    fakenvml.error("nvmlDeviceGetTemperature", 1, 0)
    assert dev.sample(static).gpu_temp_c == 32


def test_one_fields_status_is_its_own(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[6]
    static = dev.static()
    fakenvml.field_error(6, pynvml.NVML_FI_DEV_MEMORY_TEMP, fk.UNKNOWN)
    fakenvml.field_error(6, pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER, fk.NOT_SUPPORTED)
    s = dev.sample(static)
    assert s.memory_temp_c is None and s.pcie_replay is None and "memory_temp_c" in s.failed
    assert s.energy_mj == 5000000000 + 6 * 1000003
    assert pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER in dev.skip_fields


def test_a_lost_gpu_ends_its_cycle_and_the_others_go_on(fakenvml, open_nvml):
    devs = open_nvml(fakenvml).devices()
    statics = [d.static() for d in devs]
    fakenvml.lose(3)
    with pytest.raises(GpuLost):
        devs[3].sample(statics[3])
    assert devs[4].sample(statics[4]).gpu_temp_c == 35
    fakenvml.lose(3, False)
    assert devs[3].sample(statics[3]).gpu_temp_c == 34


def test_an_old_driver_falls_back(make_fakenvml, open_nvml):
    fake = make_fakenvml(omit=build.OLD_DRIVER)
    fake.set(0, "clock_events", 0x40)
    dev = open_nvml(fake).devices()[0]
    s = dev.sample(dev.static())
    assert s.clock_events == 0x40                       # from the throttle-reasons call
    assert s.fb_used_mib == 1024 + 552 and s.fb_reserved_mib is None  # v1: used includes reserved
    assert s.energy_mj == 5000000000 and s.ecc_dbe_volatile == 0       # one call each
    assert s.remapped_correctable is None and s.failed == ()           # no fallback: absent
    assert {"field_values", "remapped_rows", "memory_v2", "clock_events"} <= dev.skip


def test_no_driver(tmp_path, fakenvml):
    with pytest.raises(NvmlMissing, match="cannot be loaded"):
        Nvml(str(tmp_path / "libnvidia-ml.so.1")).open()
    fakenvml.error("nvmlInitWithFlags", fk.SYSTEM, fk.DRIVER_NOT_LOADED)
    with pytest.raises(NvmlMissing, match="no NVIDIA driver"):
        Nvml(str(fakenvml.library)).open()


def test_errors_are_translated_once():
    t = nvml_call.translate
    assert isinstance(t(pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND), "f"),
                      NvmlFunctionMissing)
    assert isinstance(t(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), "f"), GpuLost)
    assert isinstance(t(pynvml.NVMLError(pynvml.NVML_ERROR_IN_USE), "f"), GpuInUse)
    assert t(pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), "f").code == pynvml.NVML_ERROR_UNKNOWN


def test_settings_are_read_back(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[0]
    assert dev.set_power_limit(450) == 450.0 and fakenvml.get(0, "power_limit_mw") == 450000
    assert dev.set_persistence(False) is False
    assert dev.set_compute_mode("exclusive_process") == "exclusive_process"
    assert dev.set_ecc(False) == (True, False)  # pending until a reset
    dev.reset()
    assert fakenvml.get(0, "resets") == 1 and dev.static().ecc_current is False


def test_mig_mode_activation_status_is_checked(fakenvml, open_nvml):
    devs = open_nvml(fakenvml).devices()
    assert devs[0].set_mig_mode(True) == (True, True, False, "")
    fakenvml.set(1, "mig_needs_reset", 1)
    assert devs[1].set_mig_mode(True)[:3] == (False, True, True)
    fakenvml.add_process(2, os.getpid(), 1 << 30)
    current, pending, reset, why = devs[2].set_mig_mode(True)
    assert (current, pending, reset) == (False, True, False) and "use" in why.lower()


def test_mig_layout_is_read_and_changed(fakenvml, open_nvml):
    dev = open_nvml(fakenvml).devices()[0]
    dev.set_mig_mode(True)
    profiles = {p.name: p for p in dev.static().mig_profiles}
    assert profiles["3g.40gb"].slices == 3 and profiles["1g.10gb"].instances == 7
    gi = dev.create_gpu_instance(profiles["3g.40gb"].id)
    dev.create_compute_instance(gi, 1)
    dev.create_compute_instance(gi, 2)
    s = dev.static()
    assert [(g.profile, [c.slices for c in g.compute]) for g in s.mig_instances] == \
        [("3g.40gb", [1, 2])]
    sample = dev.sample(s)
    assert [(m.gi_id, m.profile, m.fb_free_mib) for m in sample.mig] == [(gi, "3g.40gb", 40192)]
    with pytest.raises(GpuInUse):
        dev.destroy_gpu_instance(gi)  # compute instances first
    for c in s.mig_instances[0].compute:
        dev.destroy_compute_instance(gi, c.id)
    dev.destroy_gpu_instance(gi)
    assert dev.static().mig_instances == () and fakenvml.mig_layout(0) == ""
    with pytest.raises(GpuNotSupported):
        dev.create_compute_instance(dev.create_gpu_instance(profiles["1g.10gb"].id), 2)


def test_xid_events_come_from_the_event_set(fakenvml, open_nvml):
    n = open_nvml(fakenvml)
    devs = n.devices()
    events = n.events(devs)
    try:
        assert len(events.registered) == 8
        assert events.wait(10) is None
        fakenvml.queue_xid(6, 79)
        e = events.wait(500)
        assert (e.uuid, e.kind, e.data) == (devs[6].uuid, "xid", 79)
    finally:
        events.close()
