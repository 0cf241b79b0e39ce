"""A GPU's energy in joules, as a counter that never goes down: across agent
restarts (kept in the state directory) and across driver reloads and GPU
resets (which restart NVML's own millijoule counter from 0).

NVML's ``TOTAL_ENERGY_CONSUMPTION`` counts millijoules since the driver was
loaded.  The agent keeps ``base`` (what earlier driver lifetimes counted)
and the last raw reading: a raw value below the last one means the driver's
counter restarted, so the last reading joins ``base``.  What the GPU used
between the last reading and the reload is lost, never invented; the
counter stays monotonic either way.  The file is rewritten (write + rename)
at every change and fsync'ed every ``sync_every`` seconds, like the BMC's
(agent/bmc/energy.py).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from agent.logs import get_logger

log = get_logger(__name__)


class EnergyCounter:
    def __init__(self, path: str, sync_every: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.sync_every, self._clock = path, sync_every, clock
        self.base_mj = 0
        self.last_mj: int | None = None
        self.restarts = 0
        self._synced = 0.0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path) as f:
                state = json.load(f)
            self.base_mj = max(0, int(state["base_mj"]))
            self.last_mj = None if state.get("last_mj") is None else max(0, int(state["last_mj"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Starting from 0 would look like a counter reset; say why.
            log.error("gpu.energy_state_unreadable", path=self.path, error=str(exc))

    @property
    def total_mj(self) -> int:
        return self.base_mj + (self.last_mj or 0)

    def add(self, raw_mj: int) -> int:
        """Account NVML's reading ``raw_mj``; the total in millijoules."""
        if self.last_mj is not None and raw_mj < self.last_mj:
            self.base_mj += self.last_mj  # the driver's counter restarted
            self.restarts += 1
            log.info("gpu.energy_counter_restarted", path=self.path, last_mj=self.last_mj,
                     now_mj=raw_mj)
        if raw_mj != self.last_mj:
            self.last_mj = raw_mj
            self._save()
        return self.total_mj

    def _save(self) -> None:
        tmp = f"{self.path}.tmp"
        now = self._clock()
        try:
            with open(tmp, "w") as f:
                json.dump({"base_mj": self.base_mj, "last_mj": self.last_mj}, f)
                if now - self._synced >= self.sync_every:
                    f.flush()
                    os.fsync(f.fileno())
                    self._synced = now
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("gpu.energy_save_failed", path=self.path, error=str(exc))
