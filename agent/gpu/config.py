"""The ``[gpu]`` section: where NVML is and how to talk to it.

    [gpu]
    nvml_library = ""          # "" = the system's libnvidia-ml.so.1; or an absolute path
    timeout = "2s"             # one GPU's collection, or one action on it
    initial_backoff = "1s"     # first re-check of a lost GPU (doubles each time)...
    max_backoff = "5m"         # ...up to this
    field_batching = true      # counters through nvmlDeviceGetFieldValues (one call)
    max_processes = 32         # per GPU, hostagent_gpu_process_memory_bytes series (largest first)

No driver on the host is not an error: the gpu collector reports itself
absent once and the Gpu service answers FAILED_PRECONDITION.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from agent.config_values import (ConfigSection, Invalid, bool_, count, duration, optional_path,
                                 toml_value, type_name)


@dataclass(frozen=True)
class GpuConfig:
    nvml_library: str = ""
    timeout: float = 2.0
    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    field_batching: bool = True
    max_processes: int = 32


_KEYS: dict[str, Callable[[Any], Any]] = {
    "nvml_library": optional_path, "timeout": duration, "initial_backoff": duration,
    "max_backoff": duration, "field_batching": bool_, "max_processes": count(0, 1024)}


def parse_gpu(section: Any, fail: Callable[[str, str], Exception]) -> GpuConfig:
    if section is None:
        return GpuConfig()
    if not isinstance(section, dict):
        raise fail("gpu", f"expected a table, got {type_name(section)}")
    values = {}
    for k, raw in section.items():
        check = _KEYS.get(k)
        if check is None:
            raise fail(f"gpu.{k}", f"unknown key (valid: {', '.join(_KEYS)})")
        try:
            values[k] = check(raw)
        except Invalid as exc:
            raise fail(f"gpu.{k}", str(exc)) from None
    cfg = GpuConfig(**values)
    if cfg.timeout <= 0:
        raise fail("gpu.timeout", "must be more than 0s")
    return cfg


def gpu_to_toml(cfg: GpuConfig) -> list[str]:
    return ["", "[gpu]", *(f"{f.name} = {toml_value(getattr(cfg, f.name))}" for f in fields(cfg))]


SECTION: ConfigSection[GpuConfig] = ConfigSection("gpu", parse_gpu, gpu_to_toml)
