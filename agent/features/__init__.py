"""The features built into this agent, one registration line each, and the
config loader that knows them and the host's collectors.

A new feature (GPU, network) adds its folder (the domain: hub, operations,
collectors, config table), its servicer in ``agent/api/``, the declaration
that wires them here (``agent/features/<name>.py``) and one line to
``FEATURES``; nothing else names it.  The wiring sits here, above the API,
so the feature's folder stays below it: imports go one way.  See docs/architecture.md, "How to add a feature".
"""
from __future__ import annotations

from typing import Mapping, Sequence

from agent.features import bmc, flows, gpu, network
from agent.collectors import COLLECTORS
from agent.config import Config, load_config
from agent.feature import Feature
from agent.telemetry.collector import CollectorInfo

FEATURES: tuple[Feature, ...] = (
    bmc.FEATURE,
    gpu.FEATURE,
    flows.FEATURE,
    network.FEATURE,
)


def declared_collectors(features: Sequence[Feature] = FEATURES) -> tuple[CollectorInfo, ...]:
    """Every collector of this build: the host's, then each feature's."""
    infos = COLLECTORS + tuple(c for f in features for c in f.collectors)
    names = [c.name for c in infos]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"collector {twice[0]!r} is declared twice")
    return infos


def load_agent_config(path: str | None, overrides: Mapping[str, object] | None = None,
                      features: Sequence[Feature] = FEATURES) -> Config:
    """The config with this build's collectors, their options and the
    features' tables."""
    infos = declared_collectors(features)
    return load_config(path, overrides=overrides or {},
                       known_collectors=[c.name for c in infos],
                       default_enabled=[c.name for c in infos if c.default_enabled],
                       collector_options={c.name: c.options for c in infos},
                       feature_sections=[f.section for f in features if f.section is not None])
