"""glibc's allocator tuning (agent/backends/malloc.py) and when the agent
trims its heap: from its own collector, 10 s after start and then at most every
10 s, never on a timer of its own."""
from agent.backends import malloc
from agent.collectors import agent as agent_collector
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch
from agent.telemetry.scheduler import Scheduler
from agent.telemetry.store import SeriesStore


def test_glibc_takes_both_calls():
    # CI and the agent's targets run on glibc (Debian); elsewhere both are no-ops.
    assert malloc.limit_arenas(16) is True  # glibc's own default on 2 cores: changes nothing here
    assert malloc.trim() in (True, False)  # False: nothing was free to give back


def test_the_heap_is_trimmed_at_most_every_ten_seconds(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(agent_collector.time, "monotonic", lambda: now[0])
    trims = []
    store = SeriesStore(retention=60)
    collector = agent_collector.AgentCollector(Scheduler(store, EventBus()), store, EventBus(),
                                               trim=lambda: trims.append(now[0]))
    for t in (1000.0, 1005.0, 1010.0, 1015.0, 1019.0, 1020.0, 1021.0, 1060.0, 1061.0):
        now[0] = t
        collector.collect(Batch())
    assert trims == [1010.0, 1020.0, 1060.0]  # 10 s after start, then at least 10 s apart
