"""The GPU layer: NVIDIA GPUs through NVML (docs/gpu.md).  The hub (one
guarded worker per GPU), the gpu collector, XID events, MIG planning, the
GPU operations and the ``[gpu]`` config table."""
