"""The fake NVML's test-control API from Python (ctypes over ``fakenvml_*``).

A :class:`FakeNvml` creates the control file that holds the simulated GPUs;
an agent started with ``env=fake.env`` (``FAKENVML_CONTROL``) and
``[gpu] nvml_library = fake.library`` maps the same file, so what a test
sets here is what the agent's next NVML call sees, and the call counts it
reads here are the agent's.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import pynvml

# NVML return codes a test injects (nvml.h's values, through pynvml).
GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
UNKNOWN = pynvml.NVML_ERROR_UNKNOWN
DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
SYSTEM = 8  # the slot of calls without a device
ALL = -1
XID = pynvml.nvmlEventTypeXidCriticalError
DBE = pynvml.nvmlEventTypeDoubleBitEccError

_U64 = ctypes.c_ulonglong


class FakeNvml:
    def __init__(self, library: Path, control: Path, gpus: int = 8) -> None:
        self.library, self.control = Path(library), Path(control)
        lib = self._lib = ctypes.CDLL(str(library))
        lib.fakenvml_set.argtypes = [ctypes.c_int, ctypes.c_char_p, _U64]
        lib.fakenvml_get.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_U64)]
        lib.fakenvml_calls.restype = ctypes.c_longlong
        lib.fakenvml_queue_event.argtypes = [ctypes.c_int, _U64, _U64, ctypes.c_uint, ctypes.c_uint]
        lib.fakenvml_add_process.argtypes = [ctypes.c_int, ctypes.c_uint, _U64, ctypes.c_uint,
                                             ctypes.c_uint]
        lib.fakenvml_function_name.restype = ctypes.c_char_p
        self._check(lib.fakenvml_create(str(control).encode(), gpus), "create")

    @staticmethod
    def _check(ret: int, what: str) -> None:
        if ret != 0:
            raise ValueError(f"fakenvml {what} failed ({ret})")

    @property
    def env(self) -> dict[str, str]:
        return {"FAKENVML_CONTROL": str(self.control)}

    def attach(self) -> None:
        """Point this process's copy of the library at the control file
        again (after another FakeNvml was made in the same process)."""
        self._check(self._lib.fakenvml_attach(str(self.control).encode()), "attach")

    # -- the simulated GPUs ---------------------------------------------
    def set_gpu_count(self, n: int) -> None:
        self._check(self._lib.fakenvml_set_gpu_count(n), "set_gpu_count")

    def set(self, gpu: int, name: str, value: int) -> None:
        self._check(self._lib.fakenvml_set(gpu, name.encode(), value), f"set {name}")

    def get(self, gpu: int, name: str) -> int:
        out = _U64()
        self._check(self._lib.fakenvml_get(gpu, name.encode(), ctypes.byref(out)), f"get {name}")
        return out.value

    def set_str(self, gpu: int, name: str, value: str) -> None:
        self._check(self._lib.fakenvml_set_str(gpu, name.encode(), value.encode()), f"set {name}")

    def get_str(self, gpu: int, name: str) -> str:
        buf = ctypes.create_string_buffer(128)
        self._check(self._lib.fakenvml_get_str(gpu, name.encode(), buf, len(buf)), f"get {name}")
        return buf.value.decode()

    def set_system(self, driver_version: str, cuda_version: int) -> None:
        self._check(self._lib.fakenvml_set_system(driver_version.encode(), cuda_version), "system")

    def lose(self, gpu: int, lost: bool = True) -> None:
        """The GPU falls off the bus: every call on it answers GPU_IS_LOST."""
        self.set(gpu, "lost", int(lost))

    def add_process(self, gpu: int, pid: int, memory: int, gi: int = 0, ci: int = 0) -> None:
        self._check(self._lib.fakenvml_add_process(gpu, pid, memory, gi, ci), "add_process")

    def clear_processes(self, gpu: int) -> None:
        self._check(self._lib.fakenvml_clear_processes(gpu), "clear_processes")

    def mig_layout(self, gpu: int) -> str:
        """``gi_id:profile:start[ci_id:ci_profile,...];...``, in slot order."""
        buf = ctypes.create_string_buffer(1024)
        self._check(self._lib.fakenvml_mig_layout(gpu, buf, len(buf)), "mig_layout")
        return buf.value.decode()

    # -- faults ------------------------------------------------------------
    def error(self, function: str, gpu: int, code: int) -> None:
        """``function`` answers ``code`` on ``gpu`` (ALL: everywhere; SYSTEM:
        calls without a device); 0 clears it."""
        self._check(self._lib.fakenvml_set_error(function.encode(), gpu, code), f"error {function}")

    def field_error(self, gpu: int, field: int, code: int) -> None:
        """One value of nvmlDeviceGetFieldValues answers ``code``."""
        self._check(self._lib.fakenvml_set_field_error(gpu, field, code), "field_error")

    def clear_errors(self) -> None:
        self._lib.fakenvml_clear_errors()

    def block(self, function: str, gpu: int, seconds: float) -> None:
        """``function`` on ``gpu`` sleeps ``seconds`` before answering (a hung
        driver call); :meth:`release` ends every block at once."""
        self._check(self._lib.fakenvml_block(function.encode(), gpu, int(seconds * 1000)),
                    f"block {function}")

    def release(self) -> None:
        self._lib.fakenvml_release()

    def queue_event(self, gpu: int, type_: int, data: int = 0, gi: int = 0, ci: int = 0) -> None:
        self._check(self._lib.fakenvml_queue_event(gpu, type_, data, gi, ci), "queue_event")

    def queue_xid(self, gpu: int, xid: int) -> None:
        self.queue_event(gpu, XID, xid)

    # -- counting ------------------------------------------------------------
    def calls(self, function: str | None = None, gpu: int = ALL) -> int:
        n = self._lib.fakenvml_calls(function.encode() if function else None, gpu)
        if n < 0:
            raise ValueError(f"unknown function {function!r}")
        return n

    def calls_by_function(self, gpu: int = ALL) -> dict[str, int]:
        out = {}
        for i in range(self._lib.fakenvml_function_count()):
            name = self._lib.fakenvml_function_name(i).decode()
            n = self.calls(name, gpu)
            if n:
                out[name] = n
        return out

    def reset_calls(self) -> None:
        self._lib.fakenvml_reset_calls()
