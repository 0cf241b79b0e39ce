"""Energy in joules, integrated from a BMC's power readings, kept in the state
directory so the counter only ever goes up, across agent restarts too.

Each new reading adds the trapezoid between it and the previous one.  A gap
longer than ``max_gap`` (the agent was stopped, the BMC unreachable) is not
bridged: inventing energy for a time nobody measured would be worse than
missing it, and the counter stays monotonic either way.  The file is
rewritten (write + rename) at every reading, so a crash loses nothing; it is
fsync'ed every ``sync_every`` seconds, so a power loss of the host loses at
most that much.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from agent.logs import get_logger

log = get_logger(__name__)


class EnergyMeter:
    def __init__(self, path: str, max_gap: float = 60.0, sync_every: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.max_gap, self.sync_every = path, max_gap, sync_every
        self._clock = clock
        self.joules = 0.0
        self._last: tuple[float, float] | None = None  # (time, watts) of the previous reading
        self._synced = 0.0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path) as f:
                state = json.load(f)
            self.joules = max(0.0, float(state["joules"]))
            if state.get("time") is not None:
                self._last = (float(state["time"]), float(state["watts"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Starting from 0 would look like a counter reset; say why.
            log.error("bmc.energy_state_unreadable", path=self.path, error=str(exc))

    def add(self, watts: float, at: float | None = None) -> float:
        """Account a reading of ``watts`` taken at ``at`` (now); the total."""
        at = self._clock() if at is None else at
        if self._last is not None:
            t0, w0 = self._last
            dt = at - t0
            if 0 < dt <= self.max_gap:
                self.joules += (w0 + watts) / 2 * dt
        self._last = (at, watts)
        self._save(at)
        return self.joules

    def _save(self, now: float) -> None:
        tmp = f"{self.path}.tmp"
        t, w = self._last if self._last else (None, None)
        try:
            with open(tmp, "w") as f:
                json.dump({"joules": self.joules, "time": t, "watts": w}, f)
                if now - self._synced >= self.sync_every:
                    f.flush()
                    os.fsync(f.fileno())
                    self._synced = now
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("bmc.energy_save_failed", path=self.path, error=str(exc))
