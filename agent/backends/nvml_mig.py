"""MIG through NVML: a GPU's instance profiles and current layout, and the
four changes (create or destroy a GPU instance or a compute instance).

A GPU instance (GI) is a slice of the GPU's memory and compute; a compute
instance (CI) shares its GI's memory and takes some of its compute slices.
Every CI is a MIG device, with its own UUID and memory view, which is what
the per-instance telemetry reads (``NvmlDevice.mig_devices``).
"""
from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import pynvml

from agent.backends.nvml_call import nvml, text
from agent.backends.nvml_model import (ComputeInstance, GpuInstance, GpuNotSupported, MigProfile,
                                       NvmlError)

if TYPE_CHECKING:
    from agent.backends.nvml import NvmlDevice

_SHARED = pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED


def _profile_name(raw: Any) -> str:
    """"MIG 3g.40gb" -> "3g.40gb" (dcgm-exporter's GPU_I_PROFILE)."""
    name = text(raw)
    return name[4:] if name.startswith("MIG ") else name


def profiles(dev: "NvmlDevice") -> tuple[MigProfile, ...]:
    out = []
    for index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml(pynvml.nvmlDeviceGetGpuInstanceProfileInfo, dev.handle, index)
        except GpuNotSupported:
            continue
        except NvmlError as exc:
            if exc.code != pynvml.NVML_ERROR_INVALID_ARGUMENT:
                raise
            continue
        out.append(MigProfile(index, info.id, _profile_name(info.name), info.sliceCount,
                              info.instanceCount, info.memorySizeMB))
    return tuple(out)


def _gpu_instances(dev: "NvmlDevice", profile: MigProfile) -> list[Any]:
    arr = (pynvml.c_nvmlGpuInstance_t * max(profile.instances, 1))()
    count = ctypes.c_uint(0)
    nvml(pynvml.nvmlDeviceGetGpuInstances, dev.handle, profile.id, arr, ctypes.byref(count))
    return list(arr[:count.value])


def _ci_profiles(gi: Any) -> list[tuple[int, int, int]]:
    """(profile index, profile id, slices) of the CI profiles this GI offers."""
    out = []
    for index in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml(pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo, gi, index, _SHARED)
        except GpuNotSupported:
            continue
        except NvmlError as exc:
            if exc.code != pynvml.NVML_ERROR_INVALID_ARGUMENT:
                raise
            continue
        out.append((index, info.id, info.sliceCount))
    return out


def read_layout(dev: "NvmlDevice") -> tuple[tuple[MigProfile, ...], tuple[GpuInstance, ...]]:
    """The profiles and the GPU instances with their compute instances; also
    refreshes ``dev.mig_devices`` (one handle per compute instance)."""
    offered = profiles(dev)
    instances = []
    for profile in offered:
        for gi in _gpu_instances(dev, profile):
            info = nvml(pynvml.nvmlGpuInstanceGetInfo, gi)
            cis = []
            for _, ci_id, slices in _ci_profiles(gi):
                arr = (pynvml.c_nvmlComputeInstance_t * 8)()
                count = ctypes.c_uint(0)
                nvml(pynvml.nvmlGpuInstanceGetComputeInstances, gi, ci_id, arr, ctypes.byref(count))
                for ci in arr[:count.value]:
                    ci_info = nvml(pynvml.nvmlComputeInstanceGetInfo, ci)
                    cis.append(ComputeInstance(ci_info.id, ci_info.profileId, slices))
            instances.append(GpuInstance(info.id, profile.id, profile.name, info.placement.start,
                                         info.placement.size, profile.memory_mb,
                                         tuple(sorted(cis, key=lambda c: c.id))))
    instances.sort(key=lambda g: g.id)
    by_id = {g.id: g.profile for g in instances}
    dev.mig_devices = []
    for i in range(int(nvml(pynvml.nvmlDeviceGetMaxMigDeviceCount, dev.handle))):
        try:
            mig = nvml(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, dev.handle, i)
        except NvmlError as exc:
            if exc.code == pynvml.NVML_ERROR_NOT_FOUND:
                break
            raise
        gi_id = int(nvml(pynvml.nvmlDeviceGetGpuInstanceId, mig))
        dev.mig_devices.append((gi_id, by_id.get(gi_id, ""), mig))
    return offered, tuple(instances)


def create_gpu_instance(dev: "NvmlDevice", profile_id: int) -> int:
    gi = nvml(pynvml.nvmlDeviceCreateGpuInstance, dev.handle, profile_id)
    return int(nvml(pynvml.nvmlGpuInstanceGetInfo, gi).id)


def destroy_gpu_instance(dev: "NvmlDevice", gi_id: int) -> None:
    gi = nvml(pynvml.nvmlDeviceGetGpuInstanceById, dev.handle, gi_id)
    nvml(pynvml.nvmlGpuInstanceDestroy, gi)


def create_compute_instance(dev: "NvmlDevice", gi_id: int, slices: int) -> int:
    """A CI of ``slices`` compute slices in GPU instance ``gi_id``."""
    gi = nvml(pynvml.nvmlDeviceGetGpuInstanceById, dev.handle, gi_id)
    for _, profile_id, n in _ci_profiles(gi):
        if n == slices:
            ci = nvml(pynvml.nvmlGpuInstanceCreateComputeInstance, gi, profile_id)
            return int(nvml(pynvml.nvmlComputeInstanceGetInfo, ci).id)
    raise GpuNotSupported(f"GPU instance {gi_id} offers no compute instance of {slices} slices")


def destroy_compute_instance(dev: "NvmlDevice", gi_id: int, ci_id: int) -> None:
    gi = nvml(pynvml.nvmlDeviceGetGpuInstanceById, dev.handle, gi_id)
    ci = nvml(pynvml.nvmlGpuInstanceGetComputeInstanceById, gi, ci_id)
    nvml(pynvml.nvmlComputeInstanceDestroy, ci)
