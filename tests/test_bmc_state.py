"""The BMC state kept in the state directory: agent.bmc.energy.EnergyMeter (a
joules counter integrated from power readings) and agent.bmc.sel.SelCursor
(follows the SEL by record id).

EnergyMeter: trapezoid integration, gaps longer than max_gap not bridged, time
going backwards adds nothing, the total survives a restart and keeps
integrating from the persisted reading, never decreases, and a corrupt state
file is logged and starts from 0.

SelCursor (against an in-memory fake SEL): no history replay on first contact,
each new record delivered exactly once and oldest first, one Get SEL Entry per
new record plus one (never the whole log), no requests when nothing was added,
a cleared or cleared-and-refilled log is read from the start, an agent restart
delivers nothing twice, and a flood beyond MAX_PER_CYCLE is delivered over
several cycles without loss or duplicates.
"""
from __future__ import annotations

import json
import logging
import random
import struct

import pytest

from agent.bmc.energy import EnergyMeter
from agent.backends.ipmi_model import SelEntry, SelInfo
from agent.bmc.sel import MAX_PER_CYCLE, SelCursor

# =================================================================== energy ==


@pytest.fixture
def epath(tmp_path) -> str:
    return str(tmp_path / "bmc-local.energy.json")


def test_trapezoid_between_two_readings(epath):
    m = EnergyMeter(epath, max_gap=60)
    assert m.add(100.0, at=1000.0) == 0.0  # one reading is no interval yet
    assert m.add(200.0, at=1010.0) == pytest.approx(1500.0)
    assert m.add(200.0, at=1015.0) == pytest.approx(2500.0)
    assert m.joules == pytest.approx(2500.0)


def test_reading_time_defaults_to_the_clock(epath):
    now = [500.0]
    m = EnergyMeter(epath, clock=lambda: now[0])
    m.add(300.0)
    now[0] += 2.0
    assert m.add(300.0) == pytest.approx(600.0)


def test_a_gap_longer_than_max_gap_is_not_bridged(epath):
    m = EnergyMeter(epath, max_gap=60)
    m.add(100.0, at=0.0)
    assert m.add(100.0, at=60.0) == pytest.approx(6000.0)   # exactly max_gap: bridged
    assert m.add(100.0, at=121.0) == pytest.approx(6000.0)  # 61 s: nothing invented
    assert m.add(300.0, at=131.0) == pytest.approx(8000.0)  # goes on from the new reading


def test_time_going_backwards_adds_nothing(epath):
    m = EnergyMeter(epath, max_gap=60)
    m.add(100.0, at=1000.0)
    assert m.add(100.0, at=990.0) == 0.0
    assert m.add(100.0, at=990.0) == 0.0  # same instant: nothing either


def test_total_survives_a_restart_and_integrates_from_the_persisted_reading(epath):
    m = EnergyMeter(epath, max_gap=60)
    m.add(100.0, at=1000.0)
    m.add(200.0, at=1010.0)  # 1500 J, last reading 200 W at 1010
    again = EnergyMeter(epath, max_gap=60)
    assert again.joules == pytest.approx(1500.0)
    assert again.add(400.0, at=1020.0) == pytest.approx(1500.0 + 3000.0)


def test_restart_after_a_long_stop_does_not_invent_energy(epath):
    m = EnergyMeter(epath, max_gap=60)
    m.add(100.0, at=1000.0)
    m.add(100.0, at=1010.0)
    again = EnergyMeter(epath, max_gap=60)
    assert again.add(100.0, at=5000.0) == pytest.approx(1000.0)


def test_counter_never_decreases(epath):
    rng = random.Random(7)
    m = EnergyMeter(epath, max_gap=30)
    t, last = 0.0, 0.0
    for i in range(300):
        t += rng.choice([-20.0, -1.0, 0.0, 1.0, 5.0, 29.0, 31.0, 120.0])
        total = m.add(rng.uniform(0, 1500), at=t)
        assert total >= last
        last = total
        if i % 50 == 49:  # restarts along the way
            m = EnergyMeter(epath, max_gap=30)
            assert m.joules == pytest.approx(last)


def test_state_file_is_json_with_the_total(epath):
    m = EnergyMeter(epath)
    m.add(100.0, at=1.0)
    m.add(100.0, at=3.0)
    with open(epath) as f:
        state = json.load(f)
    assert state["joules"] == pytest.approx(200.0)


@pytest.mark.parametrize("content", ["{not json", '["joules"]', '{"watts": 3}', ""])
def test_corrupt_state_file_is_logged_and_starts_at_zero(epath, caplog, content):
    with open(epath, "w") as f:
        f.write(content)
    with caplog.at_level(logging.ERROR, logger="agent.bmc.energy"):
        m = EnergyMeter(epath)
    assert m.joules == 0.0
    assert [r.getMessage() for r in caplog.records] == ["bmc.energy_state_unreadable"]
    # It goes on, and replaces the bad file with a good one.
    m.add(100.0, at=0.0)
    m.add(100.0, at=1.0)
    assert EnergyMeter(epath).joules == pytest.approx(100.0)


def test_negative_total_in_the_state_file_is_not_trusted(epath):
    with open(epath, "w") as f:
        json.dump({"joules": -50.0, "time": None, "watts": None}, f)
    assert EnergyMeter(epath).joules == 0.0


# ====================================================================== SEL ==

FIRST, LAST, END = 0x0000, 0xFFFF, 0xFFFF


class FakeSel:
    """An in-memory SEL behind ``sel_entry`` with the Get SEL Entry rules:
    0 is the first record, 0xFFFF the last, next is 0xFFFF after the last,
    None for a record that is not there.  Counts requests."""

    _serial = 0  # across instances: every record ever made has distinct bytes

    def __init__(self, n: int = 0) -> None:
        self.records: list[SelEntry] = []
        self.next_id = 1
        self.add_time = 0x60000000
        self.erase_time = 0x5F000000
        self.requests = 0
        self.add(n)

    def add(self, n: int = 1) -> list[SelEntry]:
        made = []
        for _ in range(n):
            FakeSel._serial += 1
            rid = self.next_id
            self.next_id += 1
            raw = struct.pack("<HBII", rid, 2, self.add_time, FakeSel._serial).ljust(16, b"\0")
            made.append(SelEntry(record_id=rid, time=float(self.add_time), sensor="PSU1",
                                 sensor_number=rid & 0xFF, sensor_type="Power Supply",
                                 event=f"event {FakeSel._serial}", severity="warning",
                                 deassertion=False, raw=raw))
        if n:
            self.add_time += 1
            self.records += made
        return made

    def clear(self) -> None:
        self.records, self.next_id = [], 1
        self.erase_time += 1

    def info(self) -> SelInfo:
        return SelInfo(len(self.records), 16 * (4096 - len(self.records)),
                       self.add_time, self.erase_time)

    def sel_entry(self, record_id: int) -> tuple[int, SelEntry] | None:
        self.requests += 1
        if not self.records:
            return None
        if record_id == FIRST:
            i = 0
        elif record_id == LAST:
            i = len(self.records) - 1
        else:
            i = next((k for k, r in enumerate(self.records) if r.record_id == record_id), None)
            if i is None:
                return None
        nxt = self.records[i + 1].record_id if i + 1 < len(self.records) else END
        return nxt, self.records[i]


@pytest.fixture
def spath(tmp_path) -> str:
    return str(tmp_path / "bmc-local.sel.json")


def read(cursor: SelCursor, sel: FakeSel) -> list[SelEntry]:
    return cursor.read_new(sel, sel.info())


def test_first_contact_does_not_replay_history(spath):
    sel = FakeSel(5)
    cursor = SelCursor(spath)
    assert read(cursor, sel) == []
    assert sel.requests == 1  # just the newest record, to start after it


def test_later_additions_are_delivered_once_oldest_first(spath):
    sel = FakeSel(5)
    cursor = SelCursor(spath)
    read(cursor, sel)
    added = sel.add(3)
    assert read(cursor, sel) == added
    assert read(cursor, sel) == []
    one = sel.add(1)
    assert read(cursor, sel) == one


def test_requests_per_cycle_are_new_records_plus_one_not_the_whole_log(spath):
    sel = FakeSel(1000)
    cursor = SelCursor(spath)
    read(cursor, sel)
    for n in (3, 1, 10):
        added = sel.add(n)
        sel.requests = 0
        assert read(cursor, sel) == added
        assert sel.requests == n + 1


def test_no_new_add_time_means_no_requests_at_all(spath):
    sel = FakeSel(1000)
    cursor = SelCursor(spath)
    read(cursor, sel)
    sel.add(2)
    read(cursor, sel)
    sel.requests = 0
    for _ in range(5):
        assert read(cursor, sel) == []
    assert sel.requests == 0


def test_first_contact_with_an_empty_log_then_everything_added_is_new(spath):
    sel = FakeSel(0)
    cursor = SelCursor(spath)
    assert read(cursor, sel) == []
    assert sel.requests == 0
    added = sel.add(4)
    assert read(cursor, sel) == added


def test_cleared_log_every_record_in_it_is_new(spath):
    sel = FakeSel(20)
    cursor = SelCursor(spath)
    read(cursor, sel)
    sel.clear()  # erase time changes; record ids start again at 1
    refill = sel.add(3)
    assert read(cursor, sel) == refill
    more = sel.add(2)
    assert read(cursor, sel) == more


def test_cleared_then_empty_then_refilled(spath):
    sel = FakeSel(5)
    cursor = SelCursor(spath)
    read(cursor, sel)
    sel.clear()
    assert read(cursor, sel) == []
    refill = sel.add(7)  # ids 1..7 again, and 5 now holds other bytes
    assert read(cursor, sel) == refill


def test_refilled_log_where_the_remembered_id_holds_other_bytes(spath):
    sel = FakeSel(5)
    cursor = SelCursor(spath)
    read(cursor, sel)  # remembers record 5
    # Cleared and refilled between two looks, with the erase stamp unchanged
    # (as some BMCs do): record 5 exists again but is another record.
    sel.records, sel.next_id = [], 1
    refill = sel.add(6)
    assert read(cursor, sel) == refill


def test_agent_restart_delivers_nothing_twice(spath):
    sel = FakeSel(10)
    cursor = SelCursor(spath)
    read(cursor, sel)
    first = sel.add(2)
    assert read(cursor, sel) == first

    restarted = SelCursor(spath)
    sel.requests = 0
    assert read(restarted, sel) == []  # nothing new: nothing, and no requests
    assert sel.requests == 0
    later = sel.add(3)
    assert read(restarted, sel) == later


def test_agent_restart_before_any_delivery_does_not_replay_history(spath):
    sel = FakeSel(10)
    read(SelCursor(spath), sel)
    sel.add(1)
    got = read(SelCursor(spath), sel)
    assert [e.record_id for e in got] == [11]


def test_a_flood_is_delivered_over_several_cycles_without_loss_or_duplicates(spath):
    sel = FakeSel(10)
    cursor = SelCursor(spath)
    read(cursor, sel)
    flood = sel.add(2 * MAX_PER_CYCLE + 7)
    batches = []
    while batch := read(cursor, sel):
        batches.append(batch)
        assert len(batches) < 10
    assert [len(b) for b in batches] == [MAX_PER_CYCLE, MAX_PER_CYCLE, 7]
    assert [e for b in batches for e in b] == flood
    sel.requests = 0
    assert read(cursor, sel) == []
    assert sel.requests == 0  # caught up: back to no requests


def test_a_flood_survives_a_restart_midway(spath):
    sel = FakeSel(3)
    read(SelCursor(spath), sel)
    flood = sel.add(MAX_PER_CYCLE + 100)
    got = read(SelCursor(spath), sel)
    got += read(SelCursor(spath), sel)  # restarted between the two cycles
    assert got == flood
    assert read(SelCursor(spath), sel) == []


def test_records_added_during_a_flood_are_not_lost(spath):
    sel = FakeSel(0)
    cursor = SelCursor(spath)
    read(cursor, sel)
    expected = sel.add(MAX_PER_CYCLE + 1)
    got = read(cursor, sel)
    expected += sel.add(5)
    got += read(cursor, sel)
    assert got == expected and len({e.record_id for e in got}) == len(got)


def test_corrupt_cursor_file_is_logged_and_treated_as_first_contact(spath, caplog):
    with open(spath, "w") as f:
        f.write('{"record_id": 5')
    sel = FakeSel(50)
    with caplog.at_level(logging.ERROR, logger="agent.bmc.sel"):
        cursor = SelCursor(spath)
    assert [r.getMessage() for r in caplog.records] == ["bmc.sel_state_unreadable"]
    assert read(cursor, sel) == []  # no replay of 50 old records
    new = sel.add(1)
    assert read(cursor, sel) == new
