"""The kernel's entropy pool: ``/proc/sys/kernel/random/entropy_avail`` and
``poolsize``, one decimal number of bits each.

Since Linux 5.18 (the BLAKE2s-based RNG) both read 256 once the CRNG is
seeded; a low ``entropy_avail`` on older kernels can stall readers of
``/dev/random`` (key generation at boot).
"""
from __future__ import annotations

from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
RANDOM = "proc/sys/kernel/random"
AVAILABLE = FamilyDesc("node_entropy_available_bits", G, "Bits of entropy available", "bits")
POOL_SIZE = FamilyDesc("node_entropy_pool_size_bits", G, "Size of the entropy pool in bits",
                       "bits")


class Entropy(NamedTuple):
    available: int
    pool_size: int | None  # None where the kernel has no poolsize file


def parse_entropy(entropy_avail: str, poolsize: str | None) -> Entropy:
    """Raises ``ValueError`` on a file that is not one integer."""
    return Entropy(int(entropy_avail.strip()),
                   None if poolsize is None else int(poolsize.strip()))


class EntropyCollector:
    name = "entropy"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            avail = self._fs.read_text(f"{RANDOM}/entropy_avail")
        except FileNotFoundError as exc:
            raise NoData("no /proc/sys/kernel/random/entropy_avail") from exc
        entropy = parse_entropy(avail, self._fs.read_value(f"{RANDOM}/poolsize"))
        batch.gauge(AVAILABLE, entropy.available)
        if entropy.pool_size is not None:
            batch.gauge(POOL_SIZE, entropy.pool_size)


COLLECTOR = CollectorInfo(name="entropy", factory=EntropyCollector, on_scrape=True, inline=True)
