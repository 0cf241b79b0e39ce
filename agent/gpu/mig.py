"""MIG layouts as data: what is wanted (GPU instances by profile, each with
its compute instances by slice count) against what is there, and the plan
between them.  Pure functions, no NVML: the operation (agent/gpu/operations.py)
carries the plan out.

Idempotent by construction: a GPU instance that already matches a wanted
one (same profile, same compute instances) is kept, so the same layout
asked twice is an empty plan the second time.  What changes is destroyed
first and created largest first, which places instances the way NVML's
placement rules fit best.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from agent.errors import InvalidArgument

if TYPE_CHECKING:  # the backend loads when NVML is first opened (agent.gpu.hub)
    from agent.backends.nvml_model import GpuInstance, MigProfile


@dataclass(frozen=True)
class WantedInstance:
    profile: str                  # "3g.40gb"
    compute: tuple[int, ...] = ()  # slices of each compute instance; (): one for the whole GI


@dataclass(frozen=True)
class MigPlan:
    destroy: tuple[GpuInstance, ...]
    create: tuple[WantedInstance, ...]

    @property
    def empty(self) -> bool:
        return not self.destroy and not self.create


def _key(profile: str, compute: Sequence[int]) -> tuple[str, tuple[int, ...]]:
    return profile, tuple(sorted(compute, reverse=True))


def normalize(wanted: Sequence[WantedInstance], profiles: Sequence[MigProfile],
              field: str = "instances") -> list[WantedInstance]:
    """``wanted`` checked against the GPU's profiles, with defaults filled in;
    InvalidArgument names the entry."""
    by_name = {p.name: p for p in profiles}
    out, used = [], 0
    counts: dict[str, int] = {}
    for i, w in enumerate(wanted):
        p = by_name.get(w.profile)
        if p is None:
            raise InvalidArgument(f"{field}[{i}].profile", f"{w.profile!r} is not a profile of "
                                  f"this GPU (profiles: {', '.join(by_name) or 'none'})")
        compute = w.compute or (p.slices,)
        if any(c <= 0 for c in compute) or sum(compute) > p.slices:
            raise InvalidArgument(f"{field}[{i}].compute_slices", f"the compute instances of a "
                                  f"{p.name} instance take at most {p.slices} slices in all")
        counts[p.name] = counts.get(p.name, 0) + 1
        if counts[p.name] > p.instances:
            raise InvalidArgument(f"{field}[{i}].profile", f"at most {p.instances} {p.name} "
                                  "instances fit on this GPU")
        used += p.slices
        out.append(WantedInstance(p.name, tuple(sorted(compute, reverse=True))))
    total = max((p.slices for p in profiles), default=0)
    if used > total:
        raise InvalidArgument(field, f"the instances take {used} compute slices; this GPU has "
                              f"{total}")
    return out


def plan(current: Sequence[GpuInstance], wanted: Sequence[WantedInstance],
         profiles: Sequence[MigProfile]) -> MigPlan:
    """``wanted`` must be normalized (:func:`normalize`)."""
    slices = {p.name: p.slices for p in profiles}
    keep: list[GpuInstance] = []
    missing = list(wanted)
    for gi in current:
        key = _key(gi.profile, [c.slices for c in gi.compute])
        match = next((w for w in missing if _key(w.profile, w.compute) == key), None)
        if match is not None:
            missing.remove(match)
            keep.append(gi)
    destroy = tuple(gi for gi in current if gi not in keep)
    create = tuple(sorted(missing, key=lambda w: -slices.get(w.profile, 0)))
    return MigPlan(destroy, create)


def describe(instances: Sequence[GpuInstance]) -> list[dict]:
    """A layout as plain data (an operation's result)."""
    return [{"gpu_instance_id": gi.id, "profile": gi.profile, "placement_start": gi.placement_start,
             "compute_instances": [{"id": c.id, "slices": c.slices} for c in gi.compute]}
            for gi in instances]
