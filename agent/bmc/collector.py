"""The ipmi collector: BMC sensors, DCMI power, chassis state and SEL, under
ipmi_exporter's metric names (so its dashboards and alerts keep working),
plus energy and the health of the agent's own BMC sessions.

Every configured BMC is polled in parallel, each on its own guarded worker
(``agent.bmc.guard``): a dead BMC costs this cycle at most its own timeout,
and nothing once its circuit is open.  A BMC that does not answer reports
``ipmi_up 0`` and keeps its other series out of the cycle (they go stale).

Labels: ipmi_exporter's (``id``, ``name``, ``type``), plus ``target``: the
target's name, empty for the local BMC (Prometheus treats an empty label as
absent, so a local agent's series look exactly like ipmi_exporter's).

Events: ``bmc.sel`` for each new SEL record (once, see ``agent.bmc.sel``),
``bmc.sensor_health`` when a sensor's health changes (and at first sight of
a sensor that is not ok), ``bmc.unreachable``/``bmc.recovered`` from the hub.
"""
from __future__ import annotations

import concurrent.futures as cf
import time

from agent.backends.ipmi_model import Health, SensorKind
from agent.bmc.config import SECTION
from agent.bmc.hub import BmcHub, BmcTarget, Poll
from agent.config import Config
from agent.errors import Unavailable
from agent.logs import get_logger
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.events import Severity
from agent.telemetry.model import Batch, FamilyDesc, MetricType

log = get_logger(__name__)
G, C = MetricType.GAUGE, MetricType.COUNTER
_T = ("target",)
_S = ("id", "name", "target")
_ST = ("id", "name", "type", "target")

UP = FamilyDesc("ipmi_up", G, "'1' if a scrape of the IPMI device was successful, '0' otherwise.",
                label_names=("collector", "target"))
SCRAPE = FamilyDesc("ipmi_scrape_duration_seconds", G,
                    "Returns how long the scrape took to complete in seconds.", "seconds", _T)
SENSOR_STATE = FamilyDesc("ipmi_sensor_state", G, "Indicates the severity of the state reported "
                          "by an IPMI sensor (0=nominal, 1=warning, 2=critical).", "", _ST)
SENSOR_VALUE = FamilyDesc("ipmi_sensor_value", G, "Generic data read from an IPMI sensor of "
                          "unknown type, relying on labels for context.", "", _ST)
_BY_KIND = {
    SensorKind.TEMPERATURE: ("ipmi_temperature_celsius", "ipmi_temperature_state",
                             "Temperature reading in degree Celsius.", "celsius"),
    SensorKind.FAN: ("ipmi_fan_speed_rpm", "ipmi_fan_speed_state", "Fan speed in rotations per minute.",
                     "rpm"),
    SensorKind.VOLTAGE: ("ipmi_voltage_volts", "ipmi_voltage_state", "Voltage reading in Volts.",
                         "volts"),
    SensorKind.CURRENT: ("ipmi_current_amperes", "ipmi_current_state", "Current reading in Amperes.",
                         "amperes"),
    SensorKind.POWER: ("ipmi_power_watts", "ipmi_power_state", "Power reading in Watts.", "watts"),
}
VALUE = {k: FamilyDesc(v, G, h, u, _S) for k, (v, _, h, u) in _BY_KIND.items()}
STATE = {k: FamilyDesc(s, G, f"Reported state of a {v.split('_')[1]} sensor "
                       "(0=nominal, 1=warning, 2=critical).", "", _S)
         for k, (v, s, _, _) in _BY_KIND.items()}
DCMI_POWER = FamilyDesc("ipmi_dcmi_power_consumption_watts", G,
                        "Current power consumption in Watts.", "watts", _T)
POWER_STATE = FamilyDesc("ipmi_chassis_power_state", G,
                         "Current power state (1=on, 0=off).", "", _T)
DRIVE_FAULT = FamilyDesc("ipmi_chassis_drive_fault_state", G,
                         "Current drive fault state (1=false, 0=true).", "", _T)
COOLING_FAULT = FamilyDesc("ipmi_chassis_cooling_fault_state", G,
                           "Current Cooling/fan fault state (1=false, 0=true).", "", _T)
SEL_COUNT = FamilyDesc("ipmi_sel_logs_count", G, "Current number of log entries in the SEL.", "", _T)
SEL_FREE = FamilyDesc("ipmi_sel_free_space_bytes", G, "Current free space remaining for new SEL "
                      "entries.", "bytes", _T)
BMC_INFO = FamilyDesc("ipmi_bmc_info", G, "Constant metric with value '1' providing details about "
                      "the BMC.", "", ("firmware_revision", "manufacturer_id",
                                       "system_firmware_version", "guid", "target"))
ENERGY = FamilyDesc("hostagent_bmc_energy_joules_total", C, "Energy used by the system, integrated "
                    "from the DCMI power readings; kept across agent restarts.", "joules", _T,
                    scale=1e-3)
LATENCY = FamilyDesc("hostagent_bmc_request_latency_seconds", G, "Mean time of one IPMI request "
                     "over the last poll of this BMC.", "seconds", _T)
REQUESTS = FamilyDesc("hostagent_bmc_calls_total", C, "Calls made to this BMC (a poll or an "
                      "API action each).", "", _T)
FAILURES = FamilyDesc("hostagent_bmc_failures_total", C, "Calls to this BMC that failed "
                      "(no answer, lost session, login refused).", "", _T)
TIMEOUTS = FamilyDesc("hostagent_bmc_timeouts_total", C, "Calls to this BMC that found no answer "
                      "within its timeout.", "", _T)
AUTH = FamilyDesc("hostagent_bmc_login_refused_total", C, "Logins this BMC refused (credentials, "
                  "cipher suite or IPMI version policy).", "", _T)
REFUSED = FamilyDesc("hostagent_bmc_calls_refused_total", C, "Calls not sent because the circuit "
                     "breaker was open.", "", _T)
CIRCUIT = FamilyDesc("hostagent_bmc_circuit_open", G, "1 while calls to this BMC are refused "
                     "after failures (backing off), else 0.", "", _T)
SUITE = FamilyDesc("hostagent_bmc_cipher_suite", G, "RMCP+ cipher suite of the session (17 or 3; "
                   "0 without a session).", "", _T)

_EVENT_SEVERITY = {"critical": Severity.CRITICAL, "warning": Severity.WARNING}
_HEALTH_SEVERITY = {Health.CRITICAL: Severity.CRITICAL, Health.WARNING: Severity.WARNING,
                    Health.UNAVAILABLE: Severity.WARNING}


class IpmiCollector:
    name = "ipmi"

    def __init__(self, ctx: CollectorContext, hub: BmcHub | None = None) -> None:
        """``hub``: the BMCs the bmc feature owns (``agent.features.bmc``);
        None or no targets: the collector reports itself absent."""
        self._hub = hub
        self._publish = ctx.publish
        self._health: dict[tuple[str, int], Health] = {}
        self._pool: cf.ThreadPoolExecutor | None = None
        self._errors: dict[str, str] = {}  # target -> last unexpected poll error

    def collect(self, batch: Batch) -> None:
        targets = list(self._hub.targets.values()) if self._hub is not None else []
        if not targets:
            raise NoData("no BMC configured ([[bmc.targets]])")
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="ipmi")
        futures = {t: self._pool.submit(self._poll, t) for t in targets}
        for target, future in futures.items():
            self._report(batch, target, *future.result())

    def _poll(self, target: BmcTarget) -> tuple[Poll | None, float]:
        t0 = time.monotonic()
        try:
            return target.poll(), time.monotonic() - t0
        except Unavailable as exc:  # reported by the hub, once per state change
            log.debug("bmc.poll_failed", target=target.name, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one BMC's failure is its ipmi_up 0
            # The BMC answered something this agent could not handle: say so
            # (once per distinct error, not every cycle).
            if self._errors.get(target.name) != str(exc):
                log.exception("bmc.poll_error", target=target.name, error=str(exc))
            self._errors[target.name] = str(exc)
            return None, time.monotonic() - t0
        self._errors.pop(target.name, None)
        return None, time.monotonic() - t0

    def _report(self, batch: Batch, target: BmcTarget, poll: Poll | None, seconds: float) -> None:
        label = "" if target.local else target.name
        g = target.guard
        for fam, value in ((REQUESTS, g.calls), (FAILURES, g.failures), (TIMEOUTS, g.timeouts),
                           (AUTH, g.auth_failures), (REFUSED, g.refused)):
            batch.counter(fam, value, label)
        batch.gauge(CIRCUIT, 1.0 if g.circuit != "closed" else 0.0, label)
        batch.gauge(SUITE, float(getattr(target.backend, "cipher_suite", 0)), label)
        batch.gauge(SCRAPE, seconds, label)
        up = 1.0 if poll is not None else 0.0
        for collector in ("ipmi", "dcmi", "chassis", "sel"):
            batch.gauge(UP, up if collector != "dcmi" or poll is None or poll.dcmi_watts is not None
                        else 0.0, collector, label)
        if poll is None:
            return
        batch.gauge(LATENCY, target.latency, label)
        for s in poll.sensors:
            self._sensor(batch, target, label, s)
        if poll.dcmi_watts is not None:
            batch.gauge(DCMI_POWER, poll.dcmi_watts, label)
        if poll.energy_joules is not None:
            batch.counter(ENERGY, int(poll.energy_joules * 1000), label)
        batch.gauge(POWER_STATE, 1.0 if poll.chassis["power_on"] else 0.0, label)
        batch.gauge(DRIVE_FAULT, 0.0 if poll.chassis["drive_fault"] else 1.0, label)
        batch.gauge(COOLING_FAULT, 0.0 if poll.chassis["cooling_fault"] else 1.0, label)
        batch.gauge(SEL_COUNT, poll.sel.entries, label)
        batch.gauge(SEL_FREE, poll.sel.free_bytes, label)
        if target.identity is not None:
            ident = target.identity
            batch.gauge(BMC_INFO, 1.0, ident.firmware_version, str(ident.manufacturer_id), "",
                        ident.guid, label)
        for entry in poll.new_sel:
            self._publish("bmc.sel", _EVENT_SEVERITY.get(entry.severity, Severity.INFO), "ipmi",
                          f"BMC {target.name} SEL #{entry.record_id}: "
                          f"{entry.sensor or 'sensor ' + str(entry.sensor_number)}: "
                          f"{entry.event or 'event'}{' (deasserted)' if entry.deassertion else ''}",
                          target=target.name, record_id=str(entry.record_id), sensor=entry.sensor,
                          sensor_number=str(entry.sensor_number), sensor_type=entry.sensor_type,
                          event=entry.event, deassertion=str(entry.deassertion).lower(),
                          bmc_time=f"{entry.time:.0f}" if entry.time is not None else "",
                          raw=entry.raw.hex())

    def _sensor(self, batch: Batch, target: BmcTarget, label: str, s) -> None:
        sid = str(s.number)
        state = s.health.state_value
        batch.gauge(SENSOR_STATE, state, sid, s.name, s.type, label)
        if s.kind in VALUE:
            if s.value is not None:
                batch.gauge(VALUE[s.kind], s.value, sid, s.name, label)
            batch.gauge(STATE[s.kind], state, sid, s.name, label)
        elif s.value is not None:
            batch.gauge(SENSOR_VALUE, s.value, sid, s.name, s.type, label)
        key = (target.name, s.number)
        before = self._health.get(key)
        self._health[key] = s.health
        if before == s.health or (before is None and s.health is Health.OK):
            return
        shown = f" at {s.value:g} {s.unit}".rstrip() if s.value is not None else ""
        self._publish("bmc.sensor_health", _HEALTH_SEVERITY.get(s.health, Severity.INFO), "ipmi",
                      f"BMC {target.name} sensor {s.name!r} is {s.health.name.lower()}{shown}"
                      + (f" ({', '.join(s.states)})" if s.states else ""),
                      target=target.name, sensor=s.name, sensor_number=sid, type=s.type,
                      health=s.health.name.lower(),
                      previous=before.name.lower() if before is not None else "",
                      value="" if s.value is None else f"{s.value:g}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


# Each BMC's poll is bounded by its own timeout (agent.bmc.guard); the
# collector must not be cut off before the slowest one reports.
TIMEOUT_MARGIN = 1.0


def timeout_for(cfg: Config) -> float | None:
    """The longest BMC target timeout plus the margin; None without targets."""
    targets = cfg.section(SECTION).targets
    return max(t.timeout for t in targets) + TIMEOUT_MARGIN if targets else None


# Declared here, built by the bmc feature with the hub it owns.
COLLECTOR = CollectorInfo(name="ipmi", factory=IpmiCollector, interval=10.0,
                          timeout_for=timeout_for)
