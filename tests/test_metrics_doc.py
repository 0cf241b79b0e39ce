"""docs/metrics.md lists every metric family the collectors declare (the
host's, in agent/collectors/, and the features', e.g. agent/bmc/collector.py)."""
import importlib
import pathlib
import pkgutil

import agent.collectors
from agent.features import declared_collectors
from agent.telemetry.model import FamilyDesc

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs/metrics.md"


def declared(value):
    if isinstance(value, FamilyDesc):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from declared(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from declared(item)


def test_every_declared_family_is_documented():
    text = DOC.read_text()
    missing = []
    modules = {f"agent.collectors.{m.name}" for m in pkgutil.iter_modules(agent.collectors.__path__)}
    modules |= {c.factory.__module__ for c in declared_collectors()}
    for name in sorted(modules):
        module = importlib.import_module(name)
        for value in vars(module).values():
            for family in declared(value):
                if f"`{family.name}`" not in text:
                    missing.append(f"{name}: {family.name}")
    assert not missing, f"add to docs/metrics.md: {missing}"
