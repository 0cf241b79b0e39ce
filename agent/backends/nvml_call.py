"""NVML calls through pynvml: loading the configured library, and NVML's
return codes as the agent's errors (``agent.backends.nvml_model``), once.

**Which library.**  pynvml always loads ``libnvidia-ml.so.1`` by name and
has no parameter for another path.  :func:`load_library` sets the module's
``nvmlLib`` (under its ``libLoadLock``) to a library opened from the
configured path, before ``nvmlInit``, and empties pynvml's function-pointer
cache; that is what pynvml's own loader does, with our path.  Those names
(``nvmlLib``, ``libLoadLock``, ``_nvmlGetFunctionPointer_cache``,
``_nvmlLib_refcount``) are private to pynvml, so the dependency range is
pinned and a test (tests/test_gpu_backend.py) fails if an upgrade drops
them.  One process uses one NVML library at a time (pynvml keeps one).
"""
from __future__ import annotations

import ctypes
from typing import Any, Callable

import pynvml

from agent.backends.nvml_model import (GpuInUse, GpuLost, GpuNoPermission, GpuNotSupported,
                                       NvmlError, NvmlFunctionMissing, NvmlMissing)

SYSTEM_LIBRARY = "libnvidia-ml.so.1"
_MISSING = (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
            pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
_NOT_SUPPORTED = (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
                  pynvml.NVML_ERROR_DEPRECATED)
_LOST = (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_GPU_NOT_FOUND)
_IN_USE = (pynvml.NVML_ERROR_IN_USE, pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)


def translate(exc: Exception, what: str) -> NvmlError:
    """A pynvml error as the agent's own (``what``: the call, for the message)."""
    if isinstance(exc, pynvml.NVMLLibraryMismatchError):
        return NvmlFunctionMissing(f"{what}: the driver's NVML is too old for it")
    code = getattr(exc, "value", 0)
    message = f"{what}: {exc}"
    if code == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
        return NvmlFunctionMissing(f"{what}: not in this driver's NVML (too old)", code)
    if code in _MISSING:
        return NvmlMissing(message, code)
    if code in _NOT_SUPPORTED:
        return GpuNotSupported(message, code)
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return GpuNoPermission(message, code)
    if code in _LOST:
        return GpuLost(message, code)
    if code in _IN_USE:
        return GpuInUse(message, code)
    return NvmlError(message, code)


def nvml(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with NVML's errors translated."""
    try:
        return fn(*args)
    except (pynvml.NVMLError, pynvml.NVMLLibraryMismatchError) as exc:
        raise translate(exc, fn.__name__) from None


def load_library(path: str) -> None:
    """Make pynvml use the library at ``path`` ("" for the system's).  See the
    module docstring for why this sets pynvml's globals."""
    with pynvml.libLoadLock:
        current = pynvml.nvmlLib
        name = getattr(current, "_name", None)
        if current is not None and name == (path or SYSTEM_LIBRARY):
            return
        if current is not None and pynvml._nvmlLib_refcount > 0:
            raise NvmlError(f"NVML library {name} is already in use in this process; "
                            f"cannot switch to {path or SYSTEM_LIBRARY}")
        lib = None
        if path:
            try:
                lib = ctypes.CDLL(path)
            except OSError as exc:
                raise NvmlMissing(f"NVIDIA driver library {path} cannot be loaded: {exc}") from None
        pynvml.nvmlLib = lib  # None: pynvml loads libnvidia-ml.so.1 itself at nvmlInit
        pynvml._nvmlGetFunctionPointer_cache.clear()


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def address(handle: Any) -> int:
    """A handle's pointer value (the same GPU gives the same handle)."""
    return ctypes.cast(handle, ctypes.c_void_p).value or 0
