"""The BMC's isolation (``agent.backends.guard.Guard``, one per BMC): what
counts as a BMC failure, and the count of refused logins.

What counts as a failure is the IPMI backend's: ``BmcUnreachable`` and
``BmcAuthFailed`` (and timeouts); an error completion code means the BMC is
alive and does not count.
"""
from __future__ import annotations

from agent.backends.guard import CLOSED, HALF_OPEN, OPEN, CircuitOpen
from agent.backends.guard import Guard as _Guard
from agent.backends.ipmi import BmcAuthFailed, BmcUnreachable

__all__ = ["BmcTimeout", "CircuitOpen", "Guard", "CLOSED", "OPEN", "HALF_OPEN"]


class BmcTimeout(BmcUnreachable):
    pass


class Guard(_Guard):
    noun = "BMC"
    failure_types = (BmcUnreachable, BmcAuthFailed)
    timeout_error = BmcTimeout

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.auth_failures = 0

    def _counted(self, exc: Exception) -> None:
        if isinstance(exc, BmcAuthFailed):
            with self._lock:
                self.auth_failures += 1
